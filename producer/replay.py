"""Replay messages into Kafka: validate, pace (fixed rate or scaled event time), count, summarise.

Invalid messages are counted and reported, and sent only with ``send_invalid`` (to exercise the dead-letter path).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from producer.sources import RawTweet
from tone.errors import ConfigError
from tone.events import DeleteEvent, ForgetEvent, Invalid, parse_record


class Writer(Protocol):
    """What replay needs of a Kafka writer (a test double implements the same)."""

    def send_raw(self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> None:
        """Queue one message."""

    def flush(self, timeout: float | None = ...) -> None:
        """Wait until every queued message is acknowledged."""


@dataclass
class Summary:
    """What one replay did."""

    sent: int = 0
    valid: int = 0  # tweets
    controls: int = 0  # deletions and erasures (tone.events.DeleteEvent, ForgetEvent)
    invalid: int = 0
    seconds: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        """Messages sent per second."""
        return self.sent / self.seconds if self.seconds else 0.0


class Pacer:
    """Sleeps so message i goes out at ``i / rate`` seconds, or at its event time divided by ``speedup``."""

    def __init__(
        self,
        rate: float | None = None,
        speedup: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Pace by ``rate`` (messages/s) or ``speedup`` (x event time); neither means as fast as possible."""
        if rate is not None and speedup is not None:
            msg = "give --rate or --speedup, not both"
            raise ConfigError(msg)
        if (rate is not None and rate <= 0) or (speedup is not None and speedup <= 0):
            msg = "--rate and --speedup must be > 0"
            raise ConfigError(msg)
        self.rate, self.speedup, self.clock, self.sleep = rate, speedup, clock, sleep
        self.start = clock()
        self.count = 0
        self.first_event: datetime | None = None

    def wait(self, created_at: datetime | None) -> None:
        """Block until the next message is due."""
        due = None
        if self.rate:
            due = self.start + self.count / self.rate
        elif self.speedup and created_at is not None:
            if self.first_event is None:
                self.first_event = created_at
            due = self.start + (created_at - self.first_event).total_seconds() / self.speedup
        self.count += 1
        if due is not None:
            delay = due - self.clock()
            if delay > 0:
                self.sleep(delay)


def replay(
    messages: Iterable[RawTweet],
    writer: Writer,
    *,
    rate: float | None = None,
    speedup: float | None = None,
    send_invalid: bool = False,
    limit: int | None = None,
    max_text_chars: int = 4000,
    max_message_bytes: int = 65_536,
    on_progress: Callable[[Summary], None] | None = None,
) -> Summary:
    """Validate and send ``messages`` (tweets, deletions, erasures; keyed by user id) until exhausted or ``limit``."""
    summary = Summary()
    pacer = Pacer(rate, speedup)
    t0 = time.monotonic()
    for i, message in enumerate(messages):
        if limit is not None and i >= limit:
            break
        result = parse_record(message.value, max_text_chars=max_text_chars, max_message_bytes=max_message_bytes)
        if isinstance(result, Invalid):
            summary.invalid += 1
            summary.reasons[result.reason] += 1
            if not send_invalid:
                continue
            key = None
        else:
            # A deletion or an erasure goes to its user's partition too: it stays behind their earlier tweets.
            summary.controls += isinstance(result, DeleteEvent | ForgetEvent)
            summary.valid += not isinstance(result, DeleteEvent | ForgetEvent)
            key = result.user_id.encode()
        pacer.wait(message.created_at)
        writer.send_raw(key, message.value, list(message.headers) or None)
        summary.sent += 1
        if on_progress is not None and summary.sent % 1000 == 0:
            on_progress(summary)
    writer.flush()
    summary.seconds = time.monotonic() - t0
    return summary


def looped(make: Callable[[], Iterable[RawTweet]], loop: bool) -> Iterator[RawTweet]:
    """The source once, or forever (``--loop``), starting it afresh each round."""
    while True:
        yield from make()
        if not loop:
            return
