import logging

import pytest

from tone.retry import backoff_delays, with_retries


class Clock:
    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def sleep(self, s):
        self.sleeps.append(s)
        self.now += s


def test_backoff_doubles_up_to_the_cap():
    delay = backoff_delays(0.5, 4.0)
    assert [delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


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
        )
    assert result == "ok"
    assert clock.sleeps == [0.5, 1.0, 2.0]
    assert sum("retry" in r.message for r in caplog.records) == 3


def test_it_gives_up_after_the_budget_and_other_errors_are_not_retried():
    clock = Clock()

    def down():
        raise ConnectionError("still down")

    with pytest.raises(ConnectionError, match="still down"):
        with_retries(
            down, transient=(ConnectionError,), what="x", give_up_after_s=10, clock=lambda: clock.now, sleep=clock.sleep
        )
    assert sum(clock.sleeps) == pytest.approx(10)

    def bug():
        raise ValueError("not transient")

    with pytest.raises(ValueError, match="not transient"):
        with_retries(
            bug, transient=(ConnectionError,), what="x", give_up_after_s=10, clock=lambda: clock.now, sleep=clock.sleep
        )
