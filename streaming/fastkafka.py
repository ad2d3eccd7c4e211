"""librdkafka (confluent-kafka) clients for the Spark workers' hot path.

Measured in one task outside Spark: kafka-python's ``send`` costs 80-170 us a record and its consumer decodes
records in pure Python; with both ends on kafka-python the per-record CPU floor was ~0.4 ms, more than scoring.
librdkafka does the batching, compression and decoding in C. The producer side of the project (``tone produce``)
stays on kafka-python; the workers use these when confluent-kafka is installed (it is, with the ``stream`` extra).
"""

from __future__ import annotations

import threading
from typing import Any

from tone.settings import Settings

# Same delivery guarantees as producer.kafka_writer.PRODUCER_DEFAULTS, in librdkafka's names.
PRODUCER_CONFIG: dict[str, Any] = {
    "acks": "all",
    "linger.ms": 5,
    "batch.size": 1024 * 1024,
    "compression.type": "gzip",
    "retries": 5,
    "max.in.flight.requests.per.connection": 1,  # with retries, keeps per-key order
    "queue.buffering.max.messages": 1_000_000,
}


def available() -> bool:
    """Whether confluent-kafka can be imported here."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return False
    return True


class FastProducer:
    """The subset of kafka-python's KafkaProducer the workers use (``send``, ``flush``), on librdkafka.

    ``flush`` raises if any record failed delivery, so the Spark task fails and is retried instead of silently
    dropping dead letters or scored tweets.
    """

    def __init__(self, settings: Settings) -> None:
        """Connect lazily (librdkafka connects in its own threads)."""
        from confluent_kafka import Producer

        self._producer = Producer({**settings.librdkafka_config(), **PRODUCER_CONFIG})
        self._errors: list[str] = []
        self._lock = threading.Lock()

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            with self._lock:
                self._errors.append(f"{msg.topic()}: {err}")

    def send(
        self,
        topic: str,
        *,
        key: bytes | None = None,
        value: bytes,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        """Queue one record (waits for room when the local queue is full)."""
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=self._delivered)
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)

    def flush(self, timeout: float = 60.0) -> None:
        """Wait for every queued record; raise if any failed or did not leave in time."""
        left = self._producer.flush(timeout)
        with self._lock:
            errors, self._errors = self._errors, []
        if left or errors:
            msg = f"{left} records not delivered in {timeout:.0f} s; errors: {errors[:5]}"
            raise RuntimeError(msg)
