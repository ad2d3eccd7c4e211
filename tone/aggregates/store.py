"""What a per-user tone store does, whatever holds the data: the protocol, its parameters, and the read shape.

Exactly once, per record: for each (query, topic, partition) the store holds the last Kafka offset counted (the
marker). A record counts if and only if its offset is above the marker, in the same atomic step that moves the
marker past it. :func:`count_records` is that rule: it keeps a range's records above the marker, whatever the
range's boundaries (a retried, re-planned or duplicate task, a lost checkpoint), and applies them in bounded
atomic steps with :meth:`ToneStore.apply_range`, the primitive that applies one step only if the marker is still
below it. A step refused because the marker moved (another attempt counted some of the records meanwhile) is
recomputed from the records still above the new marker: a range is never skipped whole.

A sharded store (Redis Cluster: one shard per hash slot) keeps that marker per shard, in the shard, next to the
users' keys it guards: a range's records are grouped by their user's shard and each shard's part is counted by the
same rule against its own marker, so each shard counts each record once on its own, and a retry after a partial
apply (a task killed between two shards) completes the shards that are behind. The partition's own marker then
moves to the range's end: it says that every shard has counted everything at or below it (a lower bound, which is
what readers of :meth:`ToneStore.last_offset` need: records at or below it are never read again).
"""

from __future__ import annotations

import bisect
import functools
import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, get_args

from tone.aggregates.deltas import Ewma, Scored, UserDelta, batch_deltas
from tone.aggregates.shadow import StepEvidence, step_evidence
from tone.labels import RANKED_LABELS
from tone.tags import STREAM

if TYPE_CHECKING:
    from tone.settings import Settings


@dataclass(frozen=True)
class StoreConfig:
    """Aggregation parameters (from settings)."""

    prefix: str = "tone:"
    half_life_s: float = 3600.0
    recent_k: int = 20
    top_min_count: int = 5
    bucket_ttl_s: int = 7 * 24 * 3600
    user_ttl_s: int = 0  # a user's keys expire this long after their last counted tweet (0: never)
    dedupe_horizon_s: int = 0  # a tweet id counts once within this long of its counting (0: no dedupe)
    tags: bool = False  # each tweet also counts for its tags and the stream (tone.tags)
    tag_ttl_s: int = 7 * 24 * 3600
    tag_recent_k: int = 5  # a tag's recent tweets (the stream keeps none)
    tag_min_tweets: int = 5  # a tag with fewer is on probation: it expires after tag_probation_s, and is not ranked
    tag_probation_s: int = 3600
    lateness_s: int = 120  # a tweet this far behind the stream's event time is late (still counted)

    @classmethod
    def from_settings(cls, settings: Settings, *, prefix: str | None = None) -> StoreConfig:
        """The configured parameters (``prefix`` overrides the key prefix, e.g. for a benchmark's own keys)."""
        return cls(
            prefix=prefix or settings.redis_key_prefix,
            half_life_s=settings.ewma_half_life_s,
            recent_k=settings.recent_tweets,
            top_min_count=settings.top_min_count,
            bucket_ttl_s=settings.hourly_bucket_ttl_s,
            user_ttl_s=settings.user_ttl_s,
            dedupe_horizon_s=settings.dedupe_horizon_s,
            tags=settings.tags,
            tag_ttl_s=settings.tag_ttl_s,
            tag_min_tweets=settings.tag_min_tweets,
            tag_recent_k=settings.tag_recent_tweets,
            tag_probation_s=settings.tag_probation_s,
            lateness_s=settings.timeline_lateness_s,
        )


@dataclass(frozen=True)
class Step:
    """One atomic step of :func:`count_records`: the tweets of offsets [start, end] of one shard's part."""

    shard: int
    start: int
    end: int
    deltas: Sequence[UserDelta]
    evidence: StepEvidence | None = None  # shadow evidence of the step's tweets (tone.aggregates.shadow)


class ToneStore(Protocol):
    """Read and write per-user aggregates; see the module docstring for the exactly-once rule."""

    config: StoreConfig
    sharded: bool  # markers per shard (see the module docstring); False: one marker per partition

    def shard_of(self, user_id: str) -> int:
        """The shard holding ``user_id``'s keys (0 in an unsharded store)."""

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
        """One atomic step: add ``deltas`` (the tweets of offsets [start, end]) and set the marker to ``end``.

        ``evidence``: the step's shadow evidence, added in the same atomic step (in the shard's evidence hash).

        Only if the (shard's) marker is below ``start`` (or absent); otherwise nothing is written and the answer is
        False. Callers count records through :func:`count_records`, which makes this exact per record.
        """

    def apply_steps(self, query: str, topic: str, partition: int, steps: Sequence[Step]) -> list[bool]:
        """:meth:`apply_range` for each step (each atomic on its own; a sharded store sends them together)."""

    def last_offset(self, query: str, topic: str, partition: int) -> int | None:
        """Last Kafka offset of ``topic``/``partition`` whose tweets ``query`` has counted (in every shard)."""

    def shard_offsets(self, query: str, topic: str, partition: int, shards: Sequence[int]) -> list[int | None]:
        """Each shard's own marker (a sharded store; an unsharded one has one marker: the partition's)."""

    def advance(self, query: str, topic: str, partition: int, end: int) -> None:
        """Move a sharded store's partition marker up to ``end`` (every shard has counted up to it)."""

    def counted_ids(self, ids: Mapping[str, Sequence[str]]) -> set[tuple[str, str]]:
        """Of ``ids`` (user id -> tweet ids), the (user, tweet) pairs counted within the dedupe horizon."""

    def kept_contributions(self, ids: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], str]:
        """Of ``ids`` (user id -> tweet ids), the contributions kept for a deletion (see Scored.contribution)."""

    def forgotten(self, user_ids: Sequence[str]) -> dict[str, float]:
        """Of ``user_ids``, those erased within the horizon, and when (their older tweets stay out)."""

    def forget(self, user_id: str, at: float) -> bool:
        """Erase a user: every key (atomically, in their slot) and their top-N entries; keep a tombstone.

        Tweets dated at or before ``at`` stay out while the tombstone lasts; newer ones count afresh. Whether there
        was anything to erase. Idempotent.
        """

    def user(self, user_id: str) -> dict[str, Any] | None:
        """A user's aggregates (see :func:`user_view`), or None for an unknown user."""

    def hourly(self, user_id: str, hour: str) -> dict[str, int]:
        """Label counts of one UTC hour bucket (``YYYYMMDDHH``)."""

    def hourly_many(self, user_id: str, hours: Sequence[str]) -> list[dict[str, int]]:
        """:meth:`hourly` for each hour, in one round trip."""

    def tag(self, tag: str) -> dict[str, Any] | None:
        """A tag's aggregates (see :func:`tag_view`; the whole stream's: tone.tags.STREAM), or None if never counted."""

    def tag_minutes(self, tag: str, hours: Sequence[str]) -> list[dict[str, float]]:
        """A tag's per-minute bucket fields (``MM:n``, ``MM:LABEL``, ``MM:p``) of each UTC hour (``YYYYMMDDHH``)."""

    def top_tags(self, by: str, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` tags with the highest mean p(``by``) (from the minimum count), or (``by`` "n") the most tweets."""

    def top(self, by: str, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` users with the highest mean p(``by``), ``by`` being one of RANKED_LABELS.

        Reads only (the API may run on a read replica): stale entries are left out here and repaired by
        :meth:`prune_top`, which the stream runs after each batch.
        """

    def prune_top(self, cursors: dict[str, int], count: int = 500) -> int:
        """Repair a bounded number of top-N entries (resuming at ``cursors``); how many.

        Entries of expired users go; a sharded store also rewrites scores that lag their users' hashes.
        """

    def shadow_evidence(self, query: str) -> list[dict[str, Any]]:
        """The stream ``query``'s shadow evidence, every (live, candidate) pair (see shadow.evidence_view)."""

    def write_health(self, query: str, fields: Mapping[str, str]) -> None:
        """Replace the stream ``query``'s health record (written by the driver after each batch)."""

    def health(self, query: str) -> dict[str, str] | None:
        """The stream ``query``'s health record, or None if it never ran."""


# Characters a user id keeps as they are inside Redis keys; every other one (":", "{", "}", "%", "*", spaces,
# anything non-ASCII) becomes %XX of its UTF-8 bytes. The encoding is injective ("%" is encoded too), so no user id
# can spell another user's key or an internal key's suffix ("a:recent", "a:h:2026112310").
_KEY_SAFE: Final = frozenset(string.ascii_letters + string.digits + "_.@-")


def key_part(user_id: str) -> str:
    """The user id as it appears inside Redis keys (see _KEY_SAFE)."""
    if all(c in _KEY_SAFE for c in user_id):
        return user_id
    return "".join(c if c in _KEY_SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in user_id)


DEFAULT_STEP_TWEETS: Final = 500


class _Unread(Enum):
    UNREAD = 0  # count_records' ``last`` when the caller has not read the marker (None means: there is none)


@dataclass(frozen=True)
class Counted:
    """What :func:`count_records` did with one range."""

    counted: int = 0  # records counted now
    already: int = 0  # records at or below the marker: counted before, by an earlier attempt or run
    steps: int = 0  # atomic steps applied
    marker: int | None = None  # the marker afterwards


def count_records(  # noqa: C901, PLR0912, PLR0915 - one loop over the shards' steps
    store: ToneStore,
    query: str,
    topic: str,
    partition: int,
    records: Sequence[tuple[int, Scored]],
    end: int,
    *,
    step: int = DEFAULT_STEP_TWEETS,
    last: int | None | Literal[_Unread.UNREAD] = _Unread.UNREAD,
) -> Counted:
    """Count each of a range's records (offset, scored tweet) once: those above the marker, in bounded steps.

    ``records`` are in offset order; ``end`` is the range's last offset (at or after the last record: a range of
    invalid records only still moves the marker, so the bookkeeping stays contiguous). ``step``: at most this many
    tweets per atomic step, so a lookup never waits long behind one, whatever the backlog. ``last``: the marker as
    the caller just read it (None: no marker yet; saves one round trip). A refused step means the marker moved
    under us: read it again and go on with the records above it. A sharded store counts each shard's part against
    the shard's own marker, the shards' steps sent together.
    """
    config = store.config
    if last is _Unread.UNREAD:
        last = store.last_offset(query, topic, partition)
    base = -1 if last is None else last
    groups: dict[int, list[tuple[int, Scored]]] = {}
    if store.sharded:
        for record in records:
            # A tweet counts in its user's shard and in each of its tags' (and the stream's): in each shard's part.
            scored = record[1]
            home = store.shard_of(scored.user_id)
            groups.setdefault(home, []).append(record)
            if config.tags:
                for shard in {store.shard_of(tag) for tag in (STREAM, *scored.tags)} - {home}:
                    groups.setdefault(shard, []).append(record)
        # Records at or below the partition's marker are counted in every shard, whatever a shard's own marker says.
        mine = store.shard_offsets(query, topic, partition, list(groups)) if groups else []
        floors = {shard: max(base, -1 if m is None else m) for shard, m in zip(groups, mine, strict=True)}
    else:
        groups[0] = list(records)
        floors = {0: base}
    offsets = {shard: [offset for offset, _ in part] for shard, part in groups.items()}
    steps = counted = 0
    while True:
        todo: list[tuple[Step, int]] = []
        for shard, part in groups.items():
            floor = floors[shard]
            if floor >= end:
                continue
            i = bisect.bisect_right(offsets[shard], floor)
            j = min(i + step, len(part))
            # A step covers its records' offsets up to the shard's next record; the final one also the offsets after
            # its last record (other shards' records, transaction markers, aborted or invalid records).
            start = offsets[shard][i] if i < j else floor + 1
            stop = offsets[shard][j] - 1 if j < len(part) else end
            tweets = [s for _, s in part[i:j]]
            keep = None
            if store.sharded:
                # A record is counted (Counted.counted) and its shadow evidence added in its user's shard only.
                keep = functools.partial(_in_shard, store, shard)
                own = [s for s in tweets if store.shard_of(s.user_id) == shard]
            else:
                own = tweets
            homes = [s for s in own if s.shadow is not None]
            deltas = batch_deltas(
                tweets,
                config.half_life_s,
                config.recent_k,
                contributions=bool(config.dedupe_horizon_s),
                tag_recent_k=config.tag_recent_k,
                tags=config.tags,
                keep=keep,
            )
            for d in deltas:
                if d.kind == "tag" and d.user_id == STREAM:
                    d.watermark = f"{topic}:{partition}"
            # A tweet's shadow evidence counts once: in its user's shard.
            evidence = step_evidence(homes) if homes else None
            todo.append((Step(shard, start, stop, deltas, evidence or None), len(own)))
        if not todo:
            break
        refused = []
        for (done, n), ok in zip(todo, store.apply_steps(query, topic, partition, [t for t, _ in todo]), strict=True):
            if ok:
                steps += 1
                counted += n
                floors[done.shard] = done.end
            else:
                refused.append(done)
        if not refused:
            continue
        now = store.shard_offsets(query, topic, partition, [done.shard for done in refused])
        for done, marker in zip(refused, now, strict=True):
            if marker is None or marker < done.start:
                # A refused step means the marker reached its start: anything else is a store breaking the
                # contract. Fail the task rather than loop or guess; Spark's retry reads the range again.
                where = f"{query}/{topic}[{partition}]" + (f" shard {done.shard}" if store.sharded else "")
                msg = f"store refused offsets {done.start}-{done.end} of {where} at marker {marker}"
                raise RuntimeError(msg)
            floors[done.shard] = marker
    if not store.sharded:
        return Counted(counted, len(records) - counted, steps, floors[0])
    if base < end:
        store.advance(query, topic, partition, end)
        base = end
    return Counted(counted, len(records) - counted, steps, base)


def _in_shard(store: ToneStore, shard: int, kind: str, entity: str) -> bool:  # noqa: ARG001 - batch_deltas' keep
    return store.shard_of(entity) == shard


def check_range(start: int, end: int) -> None:
    """An offset range must hold at least one offset."""
    if end < start:
        msg = f"offset range [{start}, {end}] is empty"
        raise ValueError(msg)


def check_ranked(by: str) -> None:
    """``by`` must name a label users are ranked by."""
    if by not in RANKED_LABELS:
        msg = f"by must be {' or '.join(RANKED_LABELS)}, got {by!r}"
        raise ValueError(msg)


TagRank = Literal["negative", "positive", "n"]  # the labels users are ranked by, and n: the most tweets
TAG_RANKS: Final[tuple[str, ...]] = get_args(TagRank)


def check_tag_rank(by: str) -> None:
    """``by`` must name a label tags are ranked by, or ``n`` (the most tweets)."""
    if by not in TAG_RANKS:
        msg = f"by must be {', '.join(TAG_RANKS)}, got {by!r}"
        raise ValueError(msg)


def tag_view(tag: str, fields: Mapping[str, str], recent: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A tag's read shape: a user's (``tweets`` = every counted tweet) with ``tag`` and ``late`` (the stream's)."""
    view = user_view(tag, fields, recent)
    if view is None:
        return None
    del view["user_id"]
    # The stream's: each input partition's event time (its latest counted tweet), "topic:partition" -> epoch s.
    watermarks = {k[3:]: float(v) for k, v in fields.items() if k.startswith("wm:")}
    return {"tag": tag, "tweets": view["n"], **view, "late": int(fields.get("late", 0)), "watermarks": watermarks}


def scored_count(fields: Mapping[str, str]) -> int:
    """A user's scored tweets from their hash fields.

    ``scored``, or ``n`` for a user counted before tweets could go unscored (all of theirs were scored).
    """
    return int(fields.get("scored", fields.get("n", 0)))


def user_view(user_id: str, fields: Mapping[str, str], recent: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The read shape of a user from the stored hash fields (both backends store the same field names).

    ``n`` is every counted tweet, ``scored`` those scored, ``languages`` the counted ones by language; the counts,
    means and EWMA are the tone of the scored ones.
    """
    if not fields:
        return None
    n = int(fields.get("n", 0))
    scored = scored_count(fields)
    # Zero once its tweets were deleted: left out, so the view equals one where they were never sent.
    counts = {k.split(":", 1)[1]: int(v) for k, v in fields.items() if k.startswith("count:") and int(v)}
    languages = {k.split(":", 1)[1]: int(v) for k, v in fields.items() if k.startswith("lang:") and int(v)}
    means = {k.split(":", 1)[1]: float(v) / scored for k, v in fields.items() if k.startswith("prob_sum:") and scored}
    ewma = Ewma(float(fields.get("ewma_s", 0)), float(fields.get("ewma_w", 0)), float(fields.get("ewma_t", "-inf")))
    label = max(counts, key=lambda k: counts[k]) if counts else None
    return {
        "user_id": user_id,
        "n": n,
        "scored": scored,
        "languages": languages,
        "counts": counts,
        "mean_probs": means,
        "mean_polarity": float(fields.get("polarity_sum", 0)) / scored if scored else 0.0,
        "ewma_polarity": ewma.value(),
        "dominant_label": label,
        "first_seen": float(fields["first_seen"]) if "first_seen" in fields else None,
        "last_seen": float(fields["last_seen"]) if "last_seen" in fields else None,
        "recent": recent,
    }


def iso_time(epoch: float | None) -> str | None:
    """Epoch seconds as an ISO-8601 UTC string."""
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def public_view(agg: Mapping[str, Any]) -> dict[str, Any]:
    """The public shape of a user's or a tag's aggregates (``user_view``'s answer), for the CLI and the API.

    ``tweets``: every counted tweet; ``languages``: the same by language (most first); ``scored``: those a route
    scored. ``counts``, the means and the EWMA are the tone of the scored ones.
    """
    return {
        "tweets": agg["n"],
        "scored": agg["scored"],
        "languages": dict(sorted(agg["languages"].items(), key=lambda kv: (-kv[1], kv[0]))),
        "dominant_label": agg["dominant_label"],
        "counts": agg["counts"],
        "mean_probs": {k: round(v, 4) for k, v in agg["mean_probs"].items()},
        "mean_polarity": round(agg["mean_polarity"], 4),
        "ewma_polarity": None if agg["ewma_polarity"] is None else round(agg["ewma_polarity"], 4),
        "first_seen": iso_time(agg["first_seen"]),
        "last_seen": iso_time(agg["last_seen"]),
        "recent": [{**r, "t": iso_time(r["t"])} for r in agg["recent"]],
    }


def finite_top(rows: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Leave out scores that are not finite (never written by the stream, but a hand-edited key could hold one)."""
    return [(u, s) for u, s in rows if math.isfinite(s)]
