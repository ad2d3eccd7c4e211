"""Shifts in tone: a sequential change detector over a per-minute timeline, in event time.

Input: per minute (in time order, empty minutes included or not), how many scored tweets there were and how many of
them were negative. The detector learns a baseline negative share over its first ``baseline_minutes`` with tweets
(at least ``min_baseline_tweets``), then runs two one-sided CUSUMs of the binomial log-likelihood ratio (Page 1954):
one for the share rising by ``delta`` above the baseline, one for it falling by ``delta`` below. A CUSUM that
reaches ``threshold`` is a shift: it is reported with the minute it was detected in and the minute its run began
(the estimated change point), and the detector learns a new baseline from the minutes after it.

Why this one: the per-minute counts of a tag are small and vary (a Gaussian Page-Hinkley on the share would weigh a
minute of 2 tweets like one of 200); the binomial likelihood ratio weighs each minute by its tweets, needs no variance
estimate, and its threshold reads as evidence (log-odds). Measured false alarms and delays: docs/conversation.md.

It is a pure function of the timeline, so a replay of the same tweets (the same minutes) reports the same shifts.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ShiftConfig:
    """The detector's parameters (TONE_SHIFT_THRESHOLD, TONE_SHIFT_DELTA, TONE_SHIFT_BASELINE_MINUTES)."""

    threshold: float = 14.0
    delta: float = 0.3
    baseline_minutes: int = 30
    min_baseline_tweets: int = 100


@dataclass(frozen=True)
class Shift:
    """One detected shift: the negative share went ``direction`` ("negative": up; "positive": down)."""

    at: float  # event time it was detected: the end of the minute that took the CUSUM over the threshold
    since: float  # the estimated change point: the start of the first minute of the CUSUM's run
    direction: str
    before: float  # the baseline negative share
    after: float  # the negative share over the run (since .. at)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (times as epoch seconds and ISO-8601 UTC)."""
        from datetime import UTC, datetime

        return {
            "at": datetime.fromtimestamp(self.at, UTC).isoformat(),
            "at_s": self.at,
            "since": datetime.fromtimestamp(self.since, UTC).isoformat(),
            "direction": self.direction,
            "negative_share_before": round(self.before, 4),
            "negative_share_after": round(self.after, 4),
        }


GUARD_MINUTES = 20


def _llr(p0: float, p1: float) -> tuple[float, float]:
    """Per negative and per other tweet: the log-likelihood ratio of share p1 against p0."""
    return math.log(p1 / p0), math.log((1 - p1) / (1 - p0))


def _weights(n: int, k: int, delta: float) -> tuple[dict[str, tuple[float, float]], float]:
    """The two CUSUMs' per-tweet weights around the baseline share of k negatives in n tweets, and that share."""
    # Laplace's rule keeps the share off 0 and 1 (a baseline of no negatives at all still moves).
    p0 = min(max((k + 1) / (n + 2), 0.005), 0.995)
    return {"negative": _llr(p0, min(p0 + delta, 0.995)), "positive": _llr(p0, max(p0 - delta, 0.005))}, p0


def detect(minutes: Iterable[tuple[float, int, int]], config: ShiftConfig | None = None) -> list[Shift]:  # noqa: C901, PLR0912
    """The shifts of a timeline of (minute start, scored tweets, negative tweets), in time order."""
    c = config or ShiftConfig()
    shifts: list[Shift] = []
    learn_n = learn_k = learned = 0
    p0 = 0.0
    up = down = 0.0
    run: dict[str, list[float]] = {}  # direction -> [start of its run, n, k]
    weights: dict[str, tuple[float, float]] = {}
    guard: deque[tuple[int, int]] = deque()
    for t, n, k in minutes:
        if n <= 0:
            continue
        if not weights:  # learning the baseline
            learn_n, learn_k, learned = learn_n + n, learn_k + k, learned + 1
            if learned >= c.baseline_minutes and learn_n >= c.min_baseline_tweets:
                weights, p0 = _weights(learn_n, learn_k, c.delta)
                up = down = 0.0
                run = {}
            continue
        for direction in ("negative", "positive"):
            w_k, w_rest = weights[direction]
            before = up if direction == "negative" else down
            score = max(0.0, before + k * w_k + (n - k) * w_rest)
            if score > 0:
                if before <= 0 or direction not in run:
                    run[direction] = [t, 0, 0]
                r = run[direction]
                r[1] += n
                r[2] += k
            else:
                run.pop(direction, None)
            if direction == "negative":
                up = score
            else:
                down = score
        fired = [d for d, s in (("negative", up), ("positive", down)) if s >= c.threshold]
        if fired:
            direction = fired[0] if len(fired) == 1 else ("negative" if up >= down else "positive")
            start, rn, rk = run[direction]
            shifts.append(Shift(t + 60, start, direction, p0, rk / rn if rn else 0.0))
            # Learn the new level from here on (a shift is reported once, not every minute it lasts).
            learn_n = learn_k = learned = 0
            weights = {}
            guard.clear()
        else:
            # The baseline keeps learning from the minutes more than GUARD_MINUTES old (a first estimate off by
            # chance would otherwise stay off and drift toward a false alarm); the guard keeps a change that is
            # still building up out of it. Every minute counts alike: leaving out the minutes that moved a CUSUM
            # would bias the share low.
            guard.append((n, k))
            if len(guard) > GUARD_MINUTES:
                old_n, old_k = guard.popleft()
                learn_n, learn_k = learn_n + old_n, learn_k + old_k
                weights, p0 = _weights(learn_n, learn_k, c.delta)
    return shifts


def active(shifts: list[Shift], now: float, window_s: float = 3600.0) -> Shift | None:
    """The latest shift if it was detected within ``window_s`` of ``now`` (event time), else None."""
    return shifts[-1] if shifts and now - shifts[-1].at <= window_s else None
