"""Retry a call through a transient outage, with capped exponential backoff and a log line per retry.

Used at the sinks (a Redis restart, a broker election): the call must be safe to repeat. The store's apply is (it
is idempotent per Kafka offset range, so a retry after a lost reply changes nothing). Clock and sleep are passed in
so the backoff is unit-tested without waiting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def backoff_delays(base_s: float, cap_s: float) -> Callable[[int], float]:
    """Delay before retry ``n`` (1-based): base, 2 x base, 4 x base ..., never more than ``cap_s``."""
    return lambda n: min(cap_s, base_s * 2 ** (n - 1))


def with_retries(
    call: Callable[[], T],
    *,
    transient: tuple[type[BaseException], ...],
    what: str,
    give_up_after_s: float,
    base_s: float = 0.5,
    cap_s: float = 8.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``call()``, retried on ``transient`` errors until ``give_up_after_s`` has passed; then the last error."""
    delay = backoff_delays(base_s, cap_s)
    deadline = clock() + give_up_after_s
    attempt = 0
    while True:
        try:
            return call()
        except transient as exc:
            attempt += 1
            wait = min(delay(attempt), max(0.0, deadline - clock()))
            if wait <= 0:
                log.error("%s failed %d times, giving up: %s: %s", what, attempt, type(exc).__name__, exc)
                raise
            log.warning(
                "%s failed (%s: %s); retry %d in %.1f s", what, type(exc).__name__, str(exc)[:200], attempt, wait
            )
            sleep(wait)
