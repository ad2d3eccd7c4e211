"""Per-user tone aggregates of one micro-batch, computed in Python before one atomic write to Redis.

The recency-weighted polarity is an exponentially weighted mean in *event* time with a half-life:
``ewma = S / W`` with ``S = sum(w_i * p_i)``, ``W = sum(w_i)``, ``w_i = 0.5 ** ((T - t_i) / half_life)`` for a
reference time ``T``. Kept as ``(S, W, T)``, two partial sums merge exactly (decay both to the later ``T`` and
add), so the result does not depend on batch boundaries or on tweets arriving out of order.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tone.aggregates.shadow import Shadowed
from tone.tags import STREAM


@dataclass(frozen=True, slots=True)
class Scored:
    """One counted tweet, as the aggregation needs it.

    ``scored`` False: no route scores its language (``lang``); it counts for its user (``n``, by language, first
    and last seen, recent list) and never in the tone (counts, means, EWMA, hourly buckets, top-N).
    """

    user_id: str
    tweet_id: str
    created_at: float  # event time, epoch seconds
    label: str
    probs: dict[str, float]
    polarity: float
    text: str = ""
    model_version: str = ""
    lang: str = "und"
    scored: bool = True
    deleted: bool = False  # a deletion: this is the contribution the tweet made (from the store), taken back out
    matched: bool = True  # a deletion whose tweet's contribution was kept (else its id is only recorded)
    shadow: Shadowed | None = None  # the shadow candidate's score of it (counted as evidence, never as tone)
    tags: tuple[str, ...] = ()  # its hashtags and cashtags (tone.tags): it counts for each, and for the stream

    @classmethod
    def unmatched_deletion(cls, user_id: str, tweet_id: str) -> Scored:
        """The deletion of a tweet whose contribution is not kept: it changes no count; its id is recorded."""
        return cls(user_id, tweet_id, 0.0, "", {}, 0.0, scored=False, deleted=True, matched=False)

    def contribution(self) -> str:
        """What the store keeps of a counted tweet within the dedupe horizon, so a deletion can take it back out.

        A JSON list, ``[created_at, label, polarity, lang, scored, {label: p}, [tag, ...]]``, built by hand: it is
        made for every counted tweet, and json.dumps of a dict took twice as long.
        """
        probs = ",".join([f"{_json_text(k)}:{v!r}" for k, v in self.probs.items()])
        tags = ",".join([json.dumps(t) for t in self.tags])
        return (
            f"[{self.created_at!r},{_json_text(self.label)},{self.polarity!r},{_json_text(self.lang)},"
            f"{int(self.scored)},{{{probs}}},[{tags}]]"
        )

    @classmethod
    def deletion(cls, user_id: str, tweet_id: str, contribution: str) -> Scored | None:
        """The deletion of a counted tweet, from the contribution the store kept (see :meth:`contribution`).

        None when the kept value is not one (a key written by something else): the deletion then changes nothing.
        """
        try:
            t, label, polarity, lang, scored, probs, *rest = json.loads(contribution)
            tags = tuple(str(tag) for tag in rest[0]) if rest else ()  # kept before tags were counted: none
            return cls(
                user_id, tweet_id, float(t), str(label), {str(k): float(v) for k, v in probs.items()},
                float(polarity), lang=str(lang), scored=bool(scored), deleted=True, tags=tags,
            )  # fmt: skip
        except (ValueError, TypeError, AttributeError):
            return None


def tags_of_contributions(kept: Iterable[str]) -> set[str]:
    """The tags of kept contributions (a user's ids hash values: ``STAMP[ CONTRIBUTION]``), skipping any other value."""
    tags: set[str] = set()
    for value in kept:
        _, _, contribution = value.partition(" ")
        if not contribution:
            continue
        try:
            row = json.loads(contribution)
        except ValueError:
            continue
        if isinstance(row, list) and len(row) > 6 and isinstance(row[6], list):  # noqa: PLR2004 - the tags' place
            tags.update(t for t in row[6] if isinstance(t, str))
    return tags


_json_text = functools.lru_cache(maxsize=4096)(json.dumps)  # labels and language tags: a few distinct strings
_compact = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


@dataclass
class Ewma:
    """Time-decayed weighted sum ``s`` and weight ``w`` at reference time ``t`` (epoch seconds)."""

    s: float = 0.0
    w: float = 0.0
    t: float = float("-inf")

    def value(self) -> float | None:
        """The weighted mean, or None before any observation."""
        return self.s / self.w if self.w > 0 else None

    def merge(self, other: Ewma, half_life: float) -> Ewma:
        """Combine two partial sums (order does not matter)."""
        if other.w == 0:
            return Ewma(self.s, self.w, self.t)
        if self.w == 0:
            return Ewma(other.s, other.w, other.t)
        t = max(self.t, other.t)
        a = 0.5 ** ((t - self.t) / half_life)
        b = 0.5 ** ((t - other.t) / half_life)
        return Ewma(self.s * a + other.s * b, self.w * a + other.w * b, t)

    @classmethod
    def of(cls, points: Iterable[tuple[float, float] | tuple[float, float, float]], half_life: float) -> Ewma:
        """Partial sums of (event time, value[, weight]) points; a weight of -1 takes a point back out exactly."""
        acc = cls()
        for t, p, *w in points:
            weight = w[0] if w else 1.0
            acc = acc.merge(cls(p * weight, weight, t), half_life)
        return acc


@dataclass
class UserDelta:
    """What one batch adds to one user's aggregates, or (``kind`` "tag") to one tag's or the whole stream's.

    A tag's delta (the stream is the tag STREAM) has no ids, tombstone or hourly buckets: dedupe, deletions and
    erasure are decided by its tweets' users; it has per-minute buckets (``minutes``) instead.
    """

    user_id: str  # the user's id, or the tag (tone.tags)
    ids: list[str] = field(default_factory=list)  # the tweet ids, recorded for dedupe in the same atomic step
    contributions: dict[str, str] = field(default_factory=dict)  # tweet id -> Scored.contribution (for deletions)
    deletes: list[str] = field(default_factory=list)  # tweets taken back out (their contributions are subtracted)
    blocked: list[str] = field(default_factory=list)  # deleted tweets never counted here: their ids are only recorded
    n: int = 0  # every counted tweet
    scored: int = 0  # ... of which scored: the tone fields below are theirs only
    languages: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    prob_sums: dict[str, float] = field(default_factory=dict)
    polarity_sum: float = 0.0
    ewma: Ewma = field(default_factory=Ewma)
    first_seen: float = float("inf")
    last_seen: float = float("-inf")
    hourly: dict[str, dict[str, int]] = field(default_factory=dict)
    recent: list[dict[str, Any]] = field(default_factory=list)
    kind: str = "user"  # or "tag"
    # UTC hour (YYYYMMDDHH) -> {"MM:n": counted, "MM:LABEL": scored with the label, "MM:p": polarity sum} (tags)
    minutes: dict[str, dict[str, float]] = field(default_factory=dict)
    starts: dict[int, int] = field(default_factory=dict)  # minute start (epoch s) -> tweets added (the stream's late)
    watermark: str = ""  # the stream's delta: "topic:partition", whose event time it keeps (tone.aggregates.timeline)

    def to_wire(self) -> dict[str, Any]:
        """JSON-ready form for the Redis script (the store adds how the id appears inside its keys)."""
        wire: dict[str, Any] = {
            "id": self.user_id,
            "ids": self.ids,
            "contributions": self.contributions,
            "deletes": self.deletes,
            "blocked": self.blocked,
            "n": self.n,
            "scored": self.scored,
            "languages": self.languages,
            "counts": self.counts,
            "prob_sums": self.prob_sums,
            "polarity_sum": self.polarity_sum,
            "ewma_s": self.ewma.s,
            "ewma_w": self.ewma.w,
            "ewma_t": self.ewma.t if self.ewma.w else 0.0,  # no scored tweet: nothing to merge (and JSON has no inf)
            "hourly": self.hourly,
            # Each entry as the JSON text the list keeps: the script pushes it as it is (cjson.encode of a table in
            # Lua cost more than json.dumps here, and the store is the stream's one serial resource).
            "recent": [_compact(r) for r in self.recent],
        }
        if self.first_seen != float("inf"):  # a step of deletions only leaves first and last seen as they are
            wire["first_seen"], wire["last_seen"] = self.first_seen, self.last_seen
        if self.kind == "tag":
            wire["tag"], wire["minutes"] = True, self.minutes
            if self.watermark:
                wire["starts"] = [[t, n] for t, n in self.starts.items() if n > 0]
                wire["wm"] = self.watermark
        return wire


def hour_bucket(epoch_seconds: float) -> str:
    """UTC hour of an event time (epoch seconds of a datetime: whole microseconds), as ``YYYYMMDDHH``."""
    # Every counted tweet needs one, and a batch's tweets fall in a few hours: formatting each hour once saves 90%
    # of it (strftime took 2.7% of the stream's worker CPU). Floor division keeps the hour exact at its edges.
    return _hour_text(int(epoch_seconds // 3600))


@functools.lru_cache(maxsize=4096)
def _hour_text(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y%m%d%H")


def minute_field(epoch_seconds: float) -> tuple[str, str]:
    """The hour bucket and the minute (``MM``) of an event time, as the per-minute buckets key them."""
    return hour_bucket(epoch_seconds), f"{int(epoch_seconds // 60) % 60:02d}"


def batch_deltas(  # noqa: C901 - one pass over the tweets, for users and tags
    tweets: Iterable[Scored],
    half_life: float,
    recent_k: int,
    *,
    contributions: bool = False,
    tags: bool = False,
    keep: Callable[[str, str], bool] | None = None,
    tag_recent_k: int = 5,
) -> list[UserDelta]:
    """Group a batch's counted tweets by user into deltas (recent tweets newest first, at most ``recent_k``).

    Unscored tweets (see :class:`Scored`) count in ``n``, ``languages``, first/last seen and the recent list only. A
    deletion subtracts what its tweet added (first and last seen stay). ``contributions``: keep each tweet's, for a
    deletion to come (the store does within the dedupe horizon). ``tags``: each tweet also counts for each of its
    tags and for the whole stream (the tag STREAM), a tag keeping ``tag_recent_k`` recent tweets and the stream none.
    ``keep(kind, id)``: only the deltas it keeps (a shard's part).
    """
    deltas: dict[tuple[str, str], UserDelta] = {}
    points: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    recent: dict[tuple[str, str], list[Scored]] = {}  # the recent entries are built for the kept ones only
    minute: tuple[str, str, int] | None = None
    for tw in tweets:
        entities = [("user", tw.user_id)]
        if tags:
            entities += [("tag", t) for t in (STREAM, *tw.tags)]
            minute = (*minute_field(tw.created_at), int(tw.created_at // 60) * 60)  # once a tweet, not once a tag
        for kind, entity in entities:
            if keep is not None and not keep(kind, entity):
                continue
            key = (kind, entity)
            d = deltas.get(key)
            if d is None:
                d = deltas[key] = UserDelta(entity, kind=kind)
                points[key], recent[key] = [], []
            if tw.deleted:
                _take_out(d, tw, points[key])
            else:
                _add(d, tw, points[key], contributions=contributions, minute=minute)
                if kind == "user" or entity != STREAM:
                    recent[key].append(tw)
    for key, d in deltas.items():
        d.ewma = Ewma.of(points[key], half_life)
        # Newest first; sorted() is stable, so tweets of the same time keep their order.
        kept = sorted(recent[key], key=_created, reverse=True)[: recent_k if d.kind == "user" else tag_recent_k]
        d.recent = [_entry(tw, tag=d.kind == "tag") for tw in kept]
    return list(deltas.values())


def _created(tw: Scored) -> float:
    return tw.created_at


def _entry(tw: Scored, *, tag: bool) -> dict[str, Any]:
    """A tweet as the recent list keeps it (a tag's: with its user)."""
    entry = {
        "id": tw.tweet_id,
        "t": tw.created_at,
        "label": tw.label if tw.scored else None,
        "polarity": round(tw.polarity, 4) if tw.scored else None,
        "text": tw.text[:280],
        "model": tw.model_version if tw.scored else None,
        "lang": tw.lang,
    }
    if tag:
        entry["user"] = tw.user_id
    return entry


def _add(
    d: UserDelta,
    tw: Scored,
    points: list[tuple[float, float, float]],
    *,
    contributions: bool,
    minute: tuple[str, str, int] | None,
) -> None:
    d.n += 1
    tag = d.kind == "tag"
    if not tag:
        d.ids.append(tw.tweet_id)
        if contributions:
            d.contributions[tw.tweet_id] = tw.contribution()
    d.languages[tw.lang] = d.languages.get(tw.lang, 0) + 1
    d.first_seen = min(d.first_seen, tw.created_at)
    d.last_seen = max(d.last_seen, tw.created_at)
    if tag:
        _minute(d, tw, 1, minute)
    if tw.scored:
        d.scored += 1
        d.counts[tw.label] = d.counts.get(tw.label, 0) + 1
        for label, p in tw.probs.items():
            d.prob_sums[label] = d.prob_sums.get(label, 0.0) + p
        d.polarity_sum += tw.polarity
        if not tag:
            bucket = d.hourly.setdefault(hour_bucket(tw.created_at), {})
            bucket[tw.label] = bucket.get(tw.label, 0) + 1
        points.append((tw.created_at, tw.polarity, 1.0))


def _minute(d: UserDelta, tw: Scored, sign: int, at: tuple[str, str, int] | None = None) -> None:
    """A tweet into (or, ``sign`` -1, out of) its minute's bucket (``at``: its hour, minute and minute start)."""
    hour, minute, start = at or (*minute_field(tw.created_at), int(tw.created_at // 60) * 60)
    if sign > 0:
        d.starts[start] = d.starts.get(start, 0) + 1
    bucket = d.minutes.setdefault(hour, {})
    bucket[f"{minute}:n"] = bucket.get(f"{minute}:n", 0) + sign
    if tw.scored:
        bucket[f"{minute}:{tw.label}"] = bucket.get(f"{minute}:{tw.label}", 0) + sign
        bucket[f"{minute}:p"] = bucket.get(f"{minute}:p", 0.0) + sign * tw.polarity


def _take_out(d: UserDelta, tw: Scored, points: list[tuple[float, float, float]]) -> None:
    """A deletion: the tweet's contribution with the sign turned (its EWMA point with weight -1: exact)."""
    tag = d.kind == "tag"
    if not tw.matched:
        if not tag:
            d.blocked.append(tw.tweet_id)
        return
    d.deletes.append(tw.tweet_id)
    d.n -= 1
    d.languages[tw.lang] = d.languages.get(tw.lang, 0) - 1
    if tag:
        _minute(d, tw, -1)
    if not tw.scored:
        return
    d.scored -= 1
    d.counts[tw.label] = d.counts.get(tw.label, 0) - 1
    for label, p in tw.probs.items():
        d.prob_sums[label] = d.prob_sums.get(label, 0.0) - p
    d.polarity_sum -= tw.polarity
    if not tag:
        bucket = d.hourly.setdefault(hour_bucket(tw.created_at), {})
        bucket[tw.label] = bucket.get(tw.label, 0) - 1
    points.append((tw.created_at, tw.polarity, -1.0))
