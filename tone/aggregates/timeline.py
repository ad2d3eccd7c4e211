"""The conversation read back: a tag's (or the whole stream's) per-minute timeline and its shifts, from a store.

Minutes are in event time (a tweet's ``created_at``), kept in per-hour buckets next to the tag's hash. A minute is
*closed* once the stream's event time (the latest counted tweet's) is ``lateness_s`` past its end: the shift detector
reads closed minutes only, so a live run and a replay of the same tweets report the same shifts. A tweet that arrives
for a closed minute still lands in it (the minutes always sum to the counts) and is counted as late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tone.aggregates.deltas import hour_bucket
from tone.aggregates.store import ToneStore, public_view
from tone.labels import TONE_LABELS
from tone.shifts import Shift, ShiftConfig, detect
from tone.tags import STREAM

HISTORY_HOURS = 24  # shifts are detected over the last day of a tag's event time (docs/conversation.md)
MAX_TIMELINE_MINUTES = 7 * 24 * 60  # the most a timeline shows (the minute buckets' TTL is about this)


@dataclass(frozen=True)
class Minute:
    """One minute of a timeline."""

    t: float  # its start, epoch seconds
    tweets: int  # every counted tweet
    counts: dict[str, int]  # scored ones by label
    polarity_sum: float
    closed: bool

    @property
    def scored(self) -> int:
        """Scored tweets of the minute."""
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        scored = self.scored
        return {
            "minute": datetime.fromtimestamp(self.t, UTC).isoformat(),
            "t": self.t,
            "tweets": self.tweets,
            "counts": self.counts,
            "mean_polarity": round(self.polarity_sum / scored, 4) if scored else None,
            "closed": self.closed,
        }


def _hours(first: float, last: float) -> list[str]:
    start = int(first // 3600)
    return [hour_bucket(h * 3600) for h in range(start, int(last // 3600) + 1)]


def minutes(store: ToneStore, tag: str, first: float, last: float, closed_until: float) -> list[Minute]:
    """Every minute of ``tag`` from the one holding ``first`` to the one holding ``last`` (empty ones included)."""
    hours = _hours(first, last)
    buckets = dict(zip(hours, store.tag_minutes(tag, hours), strict=True))
    out = []
    for m in range(int(first // 60), int(last // 60) + 1):
        t = m * 60.0
        fields = buckets.get(hour_bucket(t), {})
        mm = f"{m % 60:02d}"
        counts = {label: int(c) for label in TONE_LABELS if (c := fields.get(f"{mm}:{label}", 0))}
        out.append(
            Minute(t, int(fields.get(f"{mm}:n", 0)), counts, float(fields.get(f"{mm}:p", 0.0)), t + 60 <= closed_until)
        )
    return out


IDLE_PARTITION_S = 3600  # a partition this far (event time) behind the furthest one is idle: it holds nothing back


def closed_until(store: ToneStore, lateness_s: float) -> float | None:
    """The event time up to which minutes are closed (None: no tweet yet).

    The stream's event time is its slowest input partition's (each partition's latest counted tweet), as a watermark
    is in Spark and Flink: a partition behind the others may still bring tweets of earlier minutes. A partition more
    than IDLE_PARTITION_S behind the furthest is idle (no tweets for it lately) and holds nothing back.
    """
    return _closed(store.tag(STREAM), lateness_s)


def _closed(stream: dict[str, Any] | None, lateness_s: float) -> float | None:
    """:func:`closed_until` from the stream's view, read by the caller."""
    if stream is None or stream["last_seen"] is None:
        return None
    marks: list[float] = [float(w) for w in stream["watermarks"].values()] or [float(stream["last_seen"])]
    furthest = max(marks)
    return min(w for w in marks if w >= furthest - IDLE_PARTITION_S) - lateness_s


def _timeline(
    store: ToneStore, tag: str, view: dict[str, Any] | None, n_minutes: int, until: float | None
) -> list[Minute] | None:
    if view is None or view["last_seen"] is None:
        return None
    last = float(view["last_seen"])
    return minutes(store, tag, last - (n_minutes - 1) * 60, last, float("-inf") if until is None else until)


def _shifts(
    store: ToneStore, tag: str, view: dict[str, Any] | None, until: float | None, config: ShiftConfig | None
) -> list[Shift]:
    """The shifts of ``tag`` over its closed minutes (at most HISTORY_HOURS back), oldest first.

    ``view`` (the tag's) and ``until`` (:func:`closed_until`) are read once by the caller.
    """
    if view is None or view["first_seen"] is None or until is None:
        return []
    last = min(float(view["last_seen"]), until)
    first = max(float(view["first_seen"]), last - HISTORY_HOURS * 3600)
    if last < first:
        return []
    rows = [(m.t, m.scored, m.counts.get("negative", 0)) for m in minutes(store, tag, first, last, until) if m.closed]
    return detect(rows, config)


def shift_config(settings: Any) -> ShiftConfig:
    """The detector's parameters from settings."""
    return ShiftConfig(settings.shift_threshold, settings.shift_delta, settings.shift_baseline_minutes)


def tag_report(store: ToneStore, tag: str, settings: Any, *, recent: int = 10) -> dict[str, Any] | None:
    """A tag's public shape: counts, means, EWMA, recent tweets and ``shifts`` (``tone tag``, GET /tags/{tag})."""
    view = store.tag(tag)
    if view is None:
        return None
    found = _shifts(store, tag, view, closed_until(store, settings.timeline_lateness_s), shift_config(settings))
    shape = public_view(view | {"recent": view["recent"][:recent]})
    return {"tag": tag, **shape, "shifts": [s.to_dict() for s in found], "late": view["late"]}


def timeline_report(store: ToneStore, tag: str, n_minutes: int, settings: Any) -> dict[str, Any] | None:
    """``tone timeline`` / GET /timeline: one entry per minute with its counts, and the tag's shifts."""
    view, until = store.tag(tag), closed_until(store, settings.timeline_lateness_s)
    rows = _timeline(store, tag, view, n_minutes, until)
    if rows is None:
        return None
    found = _shifts(store, tag, view, until, shift_config(settings))
    return {
        "tag": None if tag == STREAM else tag,
        "minutes": [m.to_dict() for m in rows],
        "shifts": [s.to_dict() for s in found],
    }


def top_tags(store: ToneStore, by: str, n: int) -> list[dict[str, Any]]:
    """The top tags by mean p(``by``) or (``n``) tweets, each with its counts."""
    out = []
    for tag, score in store.top_tags(by, n):
        view = store.tag(tag)
        if view is None:
            continue
        out.append({"tag": tag, "score": round(score, 4), "tweets": view["n"], "counts": view["counts"]})
    return out


def active_shifts(store: ToneStore, settings: Any, n_tags: int = 20, window_s: float = 3600.0) -> list[dict[str, Any]]:
    """The shifts detected within ``window_s`` of the closed event time, for the stream and the most active tags."""
    stream = store.tag(STREAM)
    until = _closed(stream, settings.timeline_lateness_s)
    if until is None:
        return []
    out = []
    config = shift_config(settings)
    for tag in [STREAM, *(t for t, _ in store.top_tags("n", n_tags))]:
        found = _shifts(store, tag, stream if tag == STREAM else store.tag(tag), until, config)
        if found and until - found[-1].at <= window_s:
            out.append({"tag": None if tag == STREAM else tag, **found[-1].to_dict()})
    return out


def check_minutes(n: int) -> None:
    """A timeline's length must be 1 minute to the detector's history."""
    if not 1 <= n <= MAX_TIMELINE_MINUTES:
        msg = f"minutes must be 1 to {MAX_TIMELINE_MINUTES}, got {n}"
        raise ValueError(msg)
