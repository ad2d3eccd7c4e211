import logging

import pytest

from tone.retry import backoff, policy, with_retries


class Clock:
    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def sleep(self, s):
        self.sleeps.append(s)
        self.now += s


def test_backoff_doubles_up_to_the_cap_with_jitter_between_half_and_all():
    top, bottom = backoff(0.5, 4.0, rng=lambda: 1.0), backoff(0.5, 4.0, rng=lambda: 0.0)
    assert [top(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert [bottom(n) for n in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    spread = {round(backoff(0.5, 4.0)(3), 6) for _ in range(50)}
    assert len(spread) > 10 and all(1.0 <= d <= 2.0 for d in spread)  # tasks that failed together retry apart


def test_transient_errors_are_retried_with_backoff_and_logged(caplog):
    clock, calls = Clock(), []

    def flaky():
        calls.append(clock.now)
        if len(calls) < 4:
            raise ConnectionError("redis restarting")
        return "ok"

    with caplog.at_level(logging.WARNING):
        result = with_retries(
            flaky,
            transient=(ConnectionError,),
            what="apply",
            give_up_after_s=60,
            clock=lambda: clock.now,
            sleep=clock.sleep,
            rng=lambda: 1.0,
        )
    assert result == "ok"
    assert clock.sleeps == [0.5, 1.0, 2.0]
    assert sum("retry" in r.message for r in caplog.records) == 3


def test_it_gives_up_at_the_bound_never_after_and_other_errors_are_not_retried(caplog):
    clock = Clock()

    def down():
        raise ConnectionError("still down")

    with caplog.at_level(logging.ERROR), pytest.raises(ConnectionError, match="still down"):
        with_retries(
            down, transient=(ConnectionError,), what="x", give_up_after_s=10, clock=lambda: clock.now, sleep=clock.sleep
        )
    assert sum(clock.sleeps) == pytest.approx(10)  # the last wait is cut to the bound: no wait runs past it
    assert "giving up" in caplog.text

    def bug():
        raise ValueError("not transient")

    with pytest.raises(ValueError, match="not transient"):
        with_retries(
            bug, transient=(ConnectionError,), what="x", give_up_after_s=10, clock=lambda: clock.now, sleep=clock.sleep
        )


def test_a_loop_with_state_retries_through_the_same_policy():
    clock, tries = Clock(), []
    for attempt in policy(transient=(KeyError,), what="parts", give_up_after_s=5, clock=lambda: clock.now,
                          sleep=clock.sleep, rng=lambda: 1.0):  # fmt: skip
        with attempt:
            tries.append(clock.now)
            if len(tries) < 3:
                raise KeyError("2 parts left")
    assert tries == [0.0, 0.5, 1.5]
