"""An in-memory twin of the Redis store, for unit tests of the per-record pipeline without services.

It keeps the same hash fields as the Lua script in :mod:`tone.aggregates.redis_store` and follows the same rules
(exactly once per offset range, recent list capped, top sets only from the minimum count); the store contract
tests run one suite against both. Hourly buckets do not expire here. With ``shards`` > 1 it keeps a marker per
shard as the Redis Cluster store does (a user's shard from a hash of the id), for unit tests of per-shard counting
and partial applies.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tone.aggregates.deltas import Ewma, UserDelta
from tone.aggregates.store import (
    Step,
    StoreConfig,
    check_range,
    check_ranked,
    finite_top,
    scored_count,
    user_view,
)
from tone.labels import RANKED_LABELS


@dataclass
class MemoryToneStore:
    """Per-user aggregates in dictionaries (the :class:`~tone.aggregates.store.ToneStore` protocol)."""

    config: StoreConfig = field(default_factory=StoreConfig)
    users: dict[str, dict[str, str]] = field(default_factory=dict)
    recent: dict[str, list[str]] = field(default_factory=dict)
    buckets: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    ranks: dict[str, dict[str, float]] = field(default_factory=lambda: {label: {} for label in RANKED_LABELS})
    applied: dict[tuple[str, str, int] | tuple[str, str, int, int], int] = field(default_factory=dict)
    streams: dict[str, dict[str, str]] = field(default_factory=dict)
    shards: int = 1
    # Test hooks: raise this from apply_range (before any write) to simulate a failing store; or only after this
    # many more steps were applied (a task killed half-way through a range's shards).
    fail_with: Exception | None = None
    fail_after_steps: int | None = None

    @property
    def sharded(self) -> bool:
        """Markers per shard when there is more than one."""
        return self.shards > 1

    def shard_of(self, user_id: str) -> int:
        """A stable hash of the id (the Redis Cluster store uses the key's hash slot)."""
        return zlib.crc32(user_id.encode()) % self.shards if self.sharded else 0

    def _marker(self, query: str, topic: str, partition: int, shard: int) -> tuple[str, str, int, int]:
        return (query, topic, partition, shard)

    def apply_steps(self, query: str, topic: str, partition: int, steps: Sequence[Step]) -> list[bool]:
        """Each step on its own (see :meth:`apply_range`)."""
        return [self.apply_range(query, topic, partition, t.start, t.end, t.deltas, t.shard) for t in steps]

    def apply_range(  # noqa: PLR0913 - a step's coordinates
        self,
        query: str,
        topic: str,
        partition: int,
        start: int,
        end: int,
        deltas: Sequence[UserDelta],
        shard: int = 0,
    ) -> bool:
        """Apply the tweets of offsets [start, end] of one partition (shard); False if already applied."""
        check_range(start, end)
        if self.fail_after_steps is not None:
            if self.fail_after_steps <= 0:
                raise self.fail_with or RuntimeError("store failed (test hook)")
            self.fail_after_steps -= 1
        elif self.fail_with is not None:
            raise self.fail_with
        marker = self._marker(query, topic, partition, shard) if self.sharded else (query, topic, partition)
        if start <= self.applied.get(marker, -1):
            return False
        for d in deltas:
            self._add(d)
        self.applied[marker] = end
        return True

    def _add(self, d: UserDelta) -> None:
        """One user's delta, as the apply script adds it."""
        half_life = self.config.half_life_s
        wire = d.to_wire()
        json.dumps(wire, allow_nan=False)  # the Redis store refuses what JSON cannot carry: so does this one
        h = self.users.setdefault(d.user_id, {})
        scored = scored_count(h) + d.scored
        n = int(h.get("n", 0)) + d.n
        h["n"], h["scored"] = str(n), str(scored)
        for lang, c in d.languages.items():
            h[f"lang:{lang}"] = str(int(h.get(f"lang:{lang}", 0)) + c)
        for label, c in d.counts.items():
            h[f"count:{label}"] = str(int(h.get(f"count:{label}", 0)) + c)
        for label, p in d.prob_sums.items():
            h[f"prob_sum:{label}"] = repr(float(h.get(f"prob_sum:{label}", 0.0)) + p)
        h["polarity_sum"] = repr(float(h.get("polarity_sum", 0.0)) + d.polarity_sum)
        old = Ewma(float(h.get("ewma_s", 0.0)), float(h.get("ewma_w", 0.0)), float(h.get("ewma_t", 0.0)))
        ewma = old.merge(d.ewma, half_life) if d.ewma.w > 0 else old
        h["ewma_s"], h["ewma_w"], h["ewma_t"] = repr(ewma.s), repr(ewma.w), repr(ewma.t)
        h["first_seen"] = repr(min(d.first_seen, float(h.get("first_seen", "inf"))))
        h["last_seen"] = repr(max(d.last_seen, float(h.get("last_seen", "-inf"))))
        recent = [json.dumps(r) for r in d.recent] + self.recent.get(d.user_id, [])
        self.recent[d.user_id] = recent[: self.config.recent_k]
        for hour, counts in d.hourly.items():
            bucket = self.buckets.setdefault((d.user_id, hour), {})
            for label, c in counts.items():
                bucket[label] = bucket.get(label, 0) + c
        for label in RANKED_LABELS:
            if scored >= self.config.top_min_count and scored:
                self.ranks[label][d.user_id] = float(h.get(f"prob_sum:{label}", 0.0)) / scored
            else:
                self.ranks[label].pop(d.user_id, None)

    def shard_offsets(self, query: str, topic: str, partition: int, shards: Sequence[int]) -> list[int | None]:
        """Each shard's own marker."""
        if not self.sharded:
            return [self.last_offset(query, topic, partition) for _ in shards]
        return [self.applied.get(self._marker(query, topic, partition, shard)) for shard in shards]

    def advance(self, query: str, topic: str, partition: int, end: int) -> None:
        """Move the partition's marker up to ``end``."""
        key = (query, topic, partition)
        self.applied[key] = max(end, self.applied.get(key, -1))

    def prune_top(self, cursors: dict[str, int], count: int = 500) -> int:  # noqa: ARG002 - the protocol's shape
        """Nothing expires here: nothing to prune."""
        return 0

    def last_offset(self, query: str, topic: str, partition: int) -> int | None:
        """Last Kafka offset of ``topic``/``partition`` whose tweets ``query`` has counted."""
        return self.applied.get((query, topic, partition))

    def user(self, user_id: str) -> dict[str, Any] | None:
        """A user's aggregates, or None for an unknown user."""
        recent = [json.loads(r) for r in self.recent.get(user_id, [])]
        return user_view(user_id, self.users.get(user_id, {}), recent)

    def hourly(self, user_id: str, hour: str) -> dict[str, int]:
        """Label counts of one UTC hour bucket (``YYYYMMDDHH``)."""
        return dict(self.buckets.get((user_id, hour), {}))

    def hourly_many(self, user_id: str, hours: Sequence[str]) -> list[dict[str, int]]:
        """:meth:`hourly` for each hour."""
        return [self.hourly(user_id, hour) for hour in hours]

    def write_health(self, query: str, fields: Mapping[str, str]) -> None:
        """Replace the stream's health record."""
        self.streams[query] = dict(fields)

    def health(self, query: str) -> dict[str, str] | None:
        """The stream's health record."""
        return dict(self.streams[query]) if query in self.streams else None

    def top(self, by: str, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` users with the highest mean p(``by``) (ties: the larger id first, as Redis's ZREVRANGE)."""
        check_ranked(by)
        rows = sorted(self.ranks[by].items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        return finite_top(rows[:n])
