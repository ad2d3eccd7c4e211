"""The Kafka writer every source feeds, keyed by user id, with the project's producer defaults (tone.kafka).

Keying by ``user_id`` sends all of a user's tweets to one partition, so the stream sees them in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tone.events import TweetEvent
from tone.kafka.clients import kafka_python_producer
from tone.kafka.config import KafkaConnection
from tone.settings import Settings


class TweetWriter:
    """Send tweet events (or raw bytes) to the tweets topic."""

    def __init__(self, settings: Settings, topic: str | None = None, **overrides: Any) -> None:
        """Open a producer from the settings' connection, ``overrides`` (kafka-python names) over the defaults."""
        self.topic = topic or settings.kafka_topic_tweets
        self._producer = kafka_python_producer(KafkaConnection.from_settings(settings), **overrides)
        self.sent = 0

    def send(self, event: TweetEvent) -> None:
        """Queue one valid event, keyed by its user id."""
        self.send_raw(event.user_id.encode(), event.to_json())

    def send_raw(self, key: bytes | None, value: bytes) -> None:
        """Queue raw bytes as they are (used to exercise the dead-letter path with invalid records)."""
        self._producer.send(self.topic, key=key, value=value)
        self.sent += 1

    def send_all(self, events: Iterable[TweetEvent]) -> int:
        """Queue every event and wait until the broker acknowledged all of them; returns the count."""
        before = self.sent
        for event in events:
            self.send(event)
        self.flush()
        return self.sent - before

    def flush(self, timeout: float | None = 60.0) -> None:
        """Block until every queued record is acknowledged (acks=all) or raise kafka-python's error."""
        self._producer.flush(timeout=timeout)

    def close(self) -> None:
        """Flush and close the connection."""
        self._producer.close(timeout=60)

    def __enter__(self) -> TweetWriter:
        """Use as a context manager; closes (and so flushes) on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the producer."""
        self.close()
