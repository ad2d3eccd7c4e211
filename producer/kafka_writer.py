"""The Kafka writer every source feeds: batching, compression and acks=all, keyed by user id.

Keying by ``user_id`` sends all of a user's tweets to one partition, so the stream sees them in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tone.schema import TweetEvent
from tone.settings import Settings

# Throughput-oriented defaults: a 5 ms linger fills 256 KiB batches at replay rates; gzip ships with
# kafka-python itself (lz4/zstd would need extra wheels on every client machine).
PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "linger_ms": 5,
    "batch_size": 256 * 1024,
    "compression_type": "gzip",
    "retries": 5,
    "max_in_flight_requests_per_connection": 1,  # with retries, keeps per-key order
}


class TweetWriter:
    """Send tweet events (or raw bytes) to the tweets topic."""

    def __init__(self, settings: Settings, topic: str | None = None, **overrides: Any) -> None:
        """Open a producer from the settings' connection options, with ``overrides`` on top of the defaults."""
        from kafka import KafkaProducer

        self.topic = topic or settings.kafka_topic_tweets
        self._producer = KafkaProducer(**settings.kafka_client_config(), **(PRODUCER_DEFAULTS | overrides))
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
