"""`tone bench shifts`: the shift detector's false alarms on stationary replays and its delay on injected shifts.

Each replay is three hours of event time for one tag: per minute, a Poisson-like number of scored tweets (``rate``
on average) each negative with the minute's share. Stationary replays keep one share all along; shifted ones step
it up by ``jump`` at minute 90. The detector (tone.shifts, with the settings' TONE_SHIFT_*) reads the minutes as the
stream's closed minutes. Figures: false alarms per 1,000 tag-hours, and for shifts the share detected within 10
minutes and the median / 95th percentile delay (detection minute's end - the turn).
"""

from __future__ import annotations

import random
import statistics
from typing import Any

from tone.shifts import ShiftConfig, detect

MINUTES = 180
TURN = 90


def _replay(rng: random.Random, rate: float, before: float, after: float) -> list[tuple[float, int, int]]:
    rows = []
    for m in range(MINUTES):
        n = sum(rng.random() < 0.5 for _ in range(int(2 * rate)))  # binomial(2 rate, 1/2): mean rate
        share = before if m < TURN else after
        rows.append((m * 60.0, n, sum(rng.random() < share for _ in range(n))))
    return rows


def run_shift_bench(config: ShiftConfig, runs: int = 200, seed: int = 1) -> list[dict[str, Any]]:
    """One row per (rate, base share, jump): jump 0 rows count false alarms, others delays."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for rate in (3, 10, 30, 100):
        for base in (0.1, 0.3):
            alarms = sum(len(detect(_replay(rng, rate, base, base), config)) for _ in range(runs))
            per_1000 = round(1000 * alarms / (runs * MINUTES / 60), 2)
            rows.append(
                {"rate": rate, "base": base, "jump": 0.0, "runs": runs, "false_alarms_per_1000_tag_hours": per_1000}
            )
            for jump in (0.2, 0.4, 0.6):
                delays, early = [], 0
                for _ in range(runs):
                    found = detect(_replay(rng, rate, base, base + jump), config)
                    early += sum(s.at <= TURN * 60 for s in found)
                    late = [(s.at - TURN * 60) / 60 for s in found if s.at > TURN * 60 and s.direction == "negative"]
                    delays.append(late[0] if late else None)
                got = sorted(d for d in delays if d is not None)
                rows.append({
                    "rate": rate, "base": base, "jump": jump, "runs": runs,
                    "detected_within_10_min": round(sum(d <= 10 for d in got) / runs, 3),
                    "median_delay_min": statistics.median(got) if got else None,
                    "p95_delay_min": got[int(0.95 * (len(got) - 1))] if got else None,
                    "alarms_before_the_turn": early,
                })  # fmt: skip
    return rows
