"""The Kafka writer every source feeds, keyed by user id, through the project's idempotent producer (tone.kafka).

Keying by ``user_id`` sends all of a user's tweets to one partition, so the stream sees them in order. ``flush``
(and so ``close``) raises :class:`~tone.kafka.clients.DeliveryError` naming how many records the broker did not
acknowledge: `tone produce` exits non-zero then, instead of reporting messages as sent that were lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tone.events import TweetEvent
from tone.kafka.clients import DeliveryStats, open_producer
from tone.kafka.config import KafkaConnection, producer_overrides
from tone.settings import Settings


class TweetWriter:
    """Send tweet events (or raw bytes) to the tweets topic."""

    def __init__(self, settings: Settings, topic: str | None = None, **overrides: Any) -> None:
        """Open a producer on the settings' connection; ``overrides`` (librdkafka names) go over the defaults."""
        self.topic = topic or settings.kafka_topic_tweets
        conn = KafkaConnection.from_settings(settings)
        self._producer = open_producer(conn, **(producer_overrides(settings) | overrides))

    @property
    def stats(self) -> DeliveryStats:
        """Records queued, acknowledged and failed so far."""
        return self._producer.stats

    @property
    def sent(self) -> int:
        """Records handed to the producer (acknowledged or not yet)."""
        return self._producer.stats.queued

    def send(self, event: TweetEvent) -> None:
        """Queue one valid event, keyed by its user id."""
        self.send_raw(event.user_id.encode(), event.to_json())

    def send_raw(self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> None:
        """Queue raw bytes as they are (invalid records too, to exercise the dead-letter path), with ``headers``."""
        self._producer.send(self.topic, key=key, value=value, headers=list(headers) if headers else None)

    def send_all(self, events: Iterable[TweetEvent]) -> int:
        """Queue every event and wait until the broker acknowledged all of them; returns the count."""
        before = self.sent
        for event in events:
            self.send(event)
        self.flush()
        return self.sent - before

    def flush(self, timeout: float | None = None) -> None:
        """Block until every queued record is acknowledged; raise DeliveryError naming how many were not."""
        self._producer.flush(timeout)

    def close(self) -> None:
        """Flush and close the connection."""
        self._producer.close()

    def __enter__(self) -> TweetWriter:
        """Use as a context manager; closes (and so flushes) on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the producer."""
        self.close()
