import random

from tone.shifts import ShiftConfig, detect


def minutes(shares, rate=20, seed=0):
    rng = random.Random(seed)
    out = []
    for m, share in enumerate(shares):
        n = sum(rng.random() < 0.5 for _ in range(rate * 2))
        out.append((m * 60.0, n, sum(rng.random() < share for _ in range(n))))
    return out


def test_a_turn_to_negative_is_found_within_minutes_and_a_steady_stream_stays_quiet():
    turned = detect(minutes([0.1] * 90 + [0.7] * 90))
    assert len(turned) == 1 and turned[0].direction == "negative"
    assert 90 * 60 <= turned[0].at <= 95 * 60 and turned[0].since <= turned[0].at
    assert turned[0].before < 0.2 and turned[0].after > turned[0].before + 0.15
    assert sum(len(detect(minutes([0.2] * 180, seed=s))) for s in range(20)) == 0


def test_a_turn_to_positive_is_a_shift_too_and_the_detector_relearns_after_each():
    found = detect(minutes([0.6] * 60 + [0.1] * 60 + [0.6] * 60))
    assert [s.direction for s in found] == ["positive", "negative"]


def test_the_same_minutes_give_the_same_shifts_and_empty_minutes_change_nothing():
    rows = minutes([0.1] * 60 + [0.8] * 30)
    gappy = [r for m, r in enumerate(rows) for r in ([r, (r[0] + 30, 0, 0)] if m % 3 else [r])]
    assert detect(rows) == detect(list(rows)) == detect(gappy)
    assert detect(rows[:40]) == []  # still learning, or nothing to find
    assert detect(rows, ShiftConfig(threshold=1e6)) == []
