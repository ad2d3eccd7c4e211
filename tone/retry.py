"""The project's one retry policy: capped exponential backoff with jitter, bounded by a total time (tenacity).

Used wherever a call waits out a transient outage (a Redis restart, a broker election, a master's failover) and the
query's restarts: the call must be safe to repeat. The store's apply is (idempotent per Kafka offset range, so a
retry after a lost reply changes nothing).

- **Jitter.** Each delay is a random share between half and all of ``min(cap, base x 2^(n-1))`` ("equal jitter"),
  so the tasks of a stream that all lost Redis at once do not all come back in the same instant.
- **The bound is the bound.** Retries stop once ``give_up_after_s`` has passed since the first try, and no wait
  runs past it; an attempt already running when it passes ends by its own timeout (the socket timeout of a Redis
  client, 10 s). Redis clients built by :func:`tone.aggregates.redis_store.redis_client` do not retry on their
  own under this (one node; a cluster client keeps redis-py's redirect handling), so the bound is not multiplied.

Clock, sleep and the random source are passed in so the policy is unit-tested without waiting.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import tenacity

T = TypeVar("T")
log = logging.getLogger(__name__)


def backoff(base_s: float, cap_s: float, rng: Callable[[], float] = random.random) -> Callable[[int], float]:
    """The delay before retry ``n`` (1-based): between half and all of ``min(cap_s, base_s x 2^(n-1))``."""

    def delay(n: int) -> float:
        full = min(cap_s, base_s * 2.0 ** (n - 1))
        return float(full / 2 + rng() * full / 2)

    return delay


def policy(  # noqa: PLR0913 - the policy's knobs and its test seams
    *,
    transient: tuple[type[BaseException], ...],
    what: str,
    give_up_after_s: float,
    base_s: float = 0.5,
    cap_s: float = 8.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
) -> tenacity.Retrying:
    """A tenacity ``Retrying`` with the policy (see the module docstring), logging each retry and the giving up.

    Use it as ``policy(...)(call)`` or ``for attempt in policy(...): with attempt: ...`` where a retry needs state.
    """
    start = clock()
    delay = backoff(base_s, cap_s, rng)

    def left() -> float:
        return give_up_after_s - (clock() - start)

    def wait(state: tenacity.RetryCallState) -> float:
        return max(0.0, min(delay(state.attempt_number), left()))

    def stop(state: tenacity.RetryCallState) -> bool:
        if left() > 0:
            return False
        error = state.outcome.exception() if state.outcome is not None else None
        log.error("%s failed %d times, giving up: %s: %s", what, state.attempt_number, type(error).__name__, error)
        return True

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        seconds = state.upcoming_sleep
        log.warning(
            "%s failed (%s: %s); retry %d in %.1f s",
            what,
            type(error).__name__,
            str(error)[:200],
            state.attempt_number,
            seconds,
        )

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(transient),
        stop=stop,
        wait=wait,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


def with_retries(call: Callable[[], T], **options: Any) -> T:
    """``call()``, retried on ``transient`` errors under :func:`policy` (its keyword arguments); then the last error."""
    result: T = policy(**options)(call)
    return result
