"""An in-memory twin of the Redis store, for unit tests of the per-record pipeline without services.

It keeps the same hash fields as the Lua script in :mod:`tone.aggregates.redis_store` and follows the same rules
(exactly once per offset range, recent list capped, top sets only from the minimum count); the store contract
tests run one suite against both. Hourly buckets do not expire here. With ``shards`` > 1 it keeps a marker per
shard as the Redis Cluster store does (a user's shard from a hash of the id), for unit tests of per-shard counting
and partial applies.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tone.aggregates.deltas import Ewma, UserDelta, tags_of_contributions
from tone.aggregates.shadow import FLIPS_KEPT, StepEvidence, evidence_view
from tone.aggregates.store import (
    Step,
    StoreConfig,
    check_range,
    check_ranked,
    check_tag_rank,
    finite_top,
    scored_count,
    tag_view,
    user_view,
)
from tone.labels import RANKED_LABELS
from tone.tags import STREAM

TAG_KEY = "\x00tag:"  # a tag's entries among the users' (no user id holds a control character: tone.events)


def _key(d: UserDelta) -> str:
    return TAG_KEY + d.user_id if d.kind == "tag" else d.user_id


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
    ids: dict[str, dict[str, float]] = field(default_factory=dict)  # user -> tweet id -> when counted (dedupe)
    contributions: dict[str, dict[str, str]] = field(default_factory=dict)  # user -> tweet id -> its contribution
    tombstones: dict[str, float] = field(default_factory=dict)  # user -> when forgotten (older tweets refused)
    evidence: dict[tuple[str, int], dict[str, str]] = field(default_factory=dict)  # (query, shard) -> shadow counters
    flips: dict[tuple[str, int], list[str]] = field(
        default_factory=dict
    )  # (query, shard) -> flipped tweets, newest first
    minutes: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)  # (tag key, hour) -> MM:... fields
    tag_ranks: dict[str, dict[str, float]] = field(
        default_factory=lambda: {label: {} for label in (*RANKED_LABELS, "n")}
    )
    clock: Callable[[], float] = time.time
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
        return [self.apply_range(query, topic, partition, t.start, t.end, t.deltas, t.shard, t.evidence) for t in steps]

    def apply_range(  # noqa: PLR0913 - a step's coordinates
        self,
        query: str,
        topic: str,
        partition: int,
        start: int,
        end: int,
        deltas: Sequence[UserDelta],
        shard: int = 0,
        evidence: StepEvidence | None = None,
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
        seen = self.counted_ids({d.user_id: d.ids for d in deltas if d.kind == "user"})
        if seen:
            user, tweet = min(seen)
            msg = (
                f"refused, nothing written: tweet {tweet} of {user!r} was counted already (a duplicate counted since "
                "the task looked): the task is retried and leaves it out"
            )
            raise RuntimeError(msg)
        for d in deltas:
            if d.kind != "user":
                continue
            at = self.tombstones.get(d.user_id)
            if at is not None and d.first_seen <= at:
                msg = f"refused, nothing written: {d.user_id!r} was forgotten at {at} and the step holds an older tweet"
                raise RuntimeError(msg)
            if missing := [t for t in d.deletes if t not in self.contributions.get(d.user_id, {})]:
                msg = (
                    f"refused, nothing written: the contribution of tweet {missing[0]} of {d.user_id!r} is gone "
                    "(taken out since the task read it): the task is retried"
                )
                raise RuntimeError(msg)
        for d in deltas:
            self._add(d)
        if evidence:
            self._add_evidence((query, shard), evidence)
        self.applied[marker] = end
        return True

    def _add_evidence(self, where: tuple[str, int], evidence: StepEvidence) -> None:
        """A step's shadow evidence, as the apply script adds it (counters; flipped tweets pushed, then trimmed)."""
        fields = self.evidence.setdefault(where, {})
        for name, n in evidence.counts.items():
            fields[name] = str(int(fields.get(name, 0)) + n)
        for name, v in evidence.sums.items():
            fields[name] = repr(float(fields.get(name, 0.0)) + v)
        self.flips[where] = (list(reversed(evidence.flips)) + self.flips.get(where, []))[:FLIPS_KEPT]

    def shadow_evidence(self, query: str) -> list[dict[str, Any]]:
        """The stream's shadow evidence, summed over the shards."""
        keys = sorted(k for k in self.evidence if k[0] == query)
        return evidence_view([self.evidence[k] for k in keys], [f for k in keys for f in self.flips.get(k, [])])

    def _add(self, d: UserDelta) -> None:  # noqa: PLR0912 - the apply script's steps, for users and tags
        """One user's delta, as the apply script adds it."""
        half_life = self.config.half_life_s
        wire = d.to_wire()
        json.dumps(wire, allow_nan=False)  # the Redis store refuses what JSON cannot carry: so does this one
        tag = d.kind == "tag"
        if not tag and not d.ids and not d.deletes:  # deletions of tweets never counted here: their ids only
            if self.config.dedupe_horizon_s:
                self._keep_ids(d)
            return
        h = self.users.setdefault(_key(d), {})
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
        ewma = old.merge(d.ewma, half_life) if d.ewma.w else old
        h["ewma_s"], h["ewma_w"], h["ewma_t"] = repr(ewma.s), repr(ewma.w), repr(ewma.t)
        if d.watermark and d.first_seen != float("inf"):
            field_name = f"wm:{d.watermark}"
            if field_name in h:
                wm = float(h[field_name])
                late = sum(c for t, c in d.starts.items() if t + 60 + self.config.lateness_s < wm)
                if late:
                    h["late"] = str(int(h.get("late", 0)) + late)
            h[field_name] = repr(max(d.last_seen, float(h.get(field_name, "-inf"))))
        if d.first_seen != float("inf"):  # a step of deletions only leaves them as they are
            h["first_seen"] = repr(min(d.first_seen, float(h.get("first_seen", "inf"))))
            h["last_seen"] = repr(max(d.last_seen, float(h.get("last_seen", "-inf"))))
        if not tag and self.config.dedupe_horizon_s and (d.ids or d.deletes or d.blocked):
            self._keep_ids(d)
        self._lists(d)
        if tag and d.user_id == STREAM:
            return
        ranks = self.tag_ranks if tag else self.ranks
        ranked = not tag or n >= self.config.tag_min_tweets  # a tag on probation is ranked nowhere
        for label in RANKED_LABELS:
            if ranked and scored >= self.config.top_min_count and scored:
                ranks[label][d.user_id] = float(h.get(f"prob_sum:{label}", 0.0)) / scored
            else:
                ranks[label].pop(d.user_id, None)
        if tag:
            if n >= self.config.tag_min_tweets:
                ranks["n"][d.user_id] = float(n)
            else:
                ranks["n"].pop(d.user_id, None)

    def _lists(self, d: UserDelta) -> None:
        """The recent list (a deleted tweet leaves it) and the hourly buckets (a count that reaches 0 goes)."""
        key = _key(d)
        recent = [json.dumps(r) for r in d.recent] + self.recent.get(key, [])
        gone = set(d.deletes)
        k = self.config.tag_recent_k if d.kind == "tag" else self.config.recent_k
        self.recent[key] = [r for r in recent if json.loads(r)["id"] not in gone][:k]
        for hour, fields in d.minutes.items():
            minute = self.minutes.setdefault((key, hour), {})
            for name, v in fields.items():
                minute[name] = minute.get(name, 0) + v
                if not name.endswith(":p") and minute[name] == 0:
                    del minute[name]
        for hour, counts in d.hourly.items():
            bucket = self.buckets.setdefault((d.user_id, hour), {})
            for label, c in counts.items():
                bucket[label] = bucket.get(label, 0) + c
                if bucket[label] <= 0:
                    del bucket[label]

    def _keep_ids(self, d: UserDelta) -> None:
        """The delta's ids and contributions kept within the horizon.

        A deleted tweet's id stays (its replay is a duplicate); its contribution goes.
        """
        now, kept = self.clock(), self.ids.setdefault(d.user_id, {})
        contributions = self.contributions.setdefault(d.user_id, {})
        for tweet_id in [t for t, at in kept.items() if at <= now - self.config.dedupe_horizon_s]:
            del kept[tweet_id]
            contributions.pop(tweet_id, None)
        kept.update(dict.fromkeys([*d.ids, *d.deletes, *d.blocked], now))
        contributions.update(d.contributions)
        for tweet_id in d.deletes:
            contributions.pop(tweet_id, None)

    def kept_contributions(self, ids: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], str]:
        """Of ``ids`` (user -> tweet ids), the contributions kept (counted within the horizon, not deleted)."""
        counted = self.counted_ids(ids)
        return {(u, t): self.contributions[u][t] for u, t in counted if t in self.contributions.get(u, {})}

    def forgotten(self, user_ids: Sequence[str]) -> dict[str, float]:
        """Of ``user_ids``, those erased within the horizon, and when."""
        return {u: self.tombstones[u] for u in user_ids if u in self.tombstones}

    def forget(self, user_id: str, at: float) -> bool:
        """Erase a user (every key, the top-N entries) and keep a tombstone: tweets dated at or before ``at`` stay out.

        Whether there was anything to erase. Idempotent: a second erasure with the same time changes nothing.
        """
        existed = user_id in self.users
        tags = tags_of_contributions(f"0 {c}" for c in self.contributions.get(user_id, {}).values())
        for tag in tags:  # the user's kept tweets leave their tags' recent lists too
            entries = self.recent.get(TAG_KEY + tag, [])
            self.recent[TAG_KEY + tag] = [r for r in entries if json.loads(r).get("user") != user_id]
        for table in (self.users, self.recent, self.ids, self.contributions):
            table.pop(user_id, None)
        for key in [k for k in self.buckets if k[0] == user_id]:
            del self.buckets[key]
        for ranks in self.ranks.values():
            ranks.pop(user_id, None)
        self.tombstones[user_id] = max(at, self.tombstones.get(user_id, at))
        return existed

    def counted_ids(self, ids: Mapping[str, Sequence[str]]) -> set[tuple[str, str]]:
        """Of ``ids`` (user -> tweet ids), those counted within the dedupe horizon."""
        horizon = self.config.dedupe_horizon_s
        if not horizon:
            return set()
        cutoff = self.clock() - horizon
        return {
            (u, t) for u, tweet_ids in ids.items() for t in tweet_ids if self.ids.get(u, {}).get(t, cutoff) > cutoff
        }

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

    def tag(self, tag: str) -> dict[str, Any] | None:
        """A tag's aggregates (the stream's: STREAM), or None for a tag never counted."""
        key = TAG_KEY + tag
        return tag_view(tag, self.users.get(key, {}), [json.loads(r) for r in self.recent.get(key, [])])

    def tag_minutes(self, tag: str, hours: Sequence[str]) -> list[dict[str, float]]:
        """A tag's per-minute bucket fields (``MM:n``, ``MM:LABEL``, ``MM:p``) of each UTC hour."""
        return [dict(self.minutes.get((TAG_KEY + tag, hour), {})) for hour in hours]

    def top_tags(self, by: str, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` tags with the highest mean p(``by``), or (``by`` "n") the most counted tweets."""
        check_tag_rank(by)
        rows = sorted(self.tag_ranks[by].items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        return finite_top(rows[:n])

    def top(self, by: str, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` users with the highest mean p(``by``) (ties: the larger id first, as Redis's ZREVRANGE)."""
        check_ranked(by)
        rows = sorted(self.ranks[by].items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        return finite_top(rows[:n])
