"""The project's Kafka producers, built from one :class:`~tone.kafka.config.KafkaConnection`.

- :func:`kafka_python_producer`: the replay producer's client (``tone produce``);
- :class:`LibrdkafkaProducer`: the Spark workers' client for dead letters and scored tweets. Measured in one task
  outside Spark: kafka-python's ``send`` costs 80-170 us a record; librdkafka does the batching, compression and
  delivery in C.
- :func:`worker_producer`: librdkafka when confluent-kafka is installed, kafka-python otherwise.

Both follow :data:`~tone.kafka.config.PRODUCER_DEFAULTS`.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from tone.kafka.config import LIBRDKAFKA_PRODUCER_EXTRAS, PRODUCER_DEFAULTS, KafkaConnection, kafka_python_names

Headers = list[tuple[str, str | bytes | None]]


class Producer(Protocol):
    """What the stream's sinks need from a producer."""

    def send(self, topic: str, *, key: bytes | None = None, value: bytes | None, headers: Headers | None = None) -> Any:
        """Queue one record."""

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every queued record is acknowledged; raise if any was not."""


def librdkafka_available() -> bool:
    """Whether confluent-kafka (librdkafka) can be imported here."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return False
    return True


def kafka_python_producer(conn: KafkaConnection, **overrides: Any) -> Any:
    """A kafka-python ``KafkaProducer`` with the project's defaults (``overrides`` in kafka-python's names)."""
    from kafka import KafkaProducer

    return KafkaProducer(**conn.kafka_python(), **(kafka_python_names(PRODUCER_DEFAULTS) | overrides))


class LibrdkafkaProducer:
    """A librdkafka producer with kafka-python's ``send`` / ``flush`` shape.

    ``flush`` raises if any record failed delivery, so the Spark task fails and is retried instead of silently
    dropping dead letters or scored tweets.
    """

    def __init__(self, conn: KafkaConnection) -> None:
        """Connect lazily (librdkafka connects in its own threads)."""
        from confluent_kafka import Producer as RdProducer

        self._producer = RdProducer({**conn.librdkafka(), **PRODUCER_DEFAULTS, **LIBRDKAFKA_PRODUCER_EXTRAS})
        self._errors: list[str] = []
        self._lock = threading.Lock()

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            with self._lock:
                self._errors.append(f"{msg.topic()}: {err}")

    def send(
        self, topic: str, *, key: bytes | None = None, value: bytes | None, headers: Headers | None = None
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


class _KafkaPythonWorkerProducer:
    """kafka-python's producer in the same shape (the fallback without confluent-kafka)."""

    def __init__(self, conn: KafkaConnection) -> None:
        self._producer = kafka_python_producer(conn)

    def send(self, topic: str, *, key: bytes | None = None, value: bytes | None, headers: Headers | None = None) -> Any:
        return self._producer.send(topic, key=key, value=value, headers=headers)

    def flush(self, timeout: float = 60.0) -> None:
        self._producer.flush(timeout=timeout)


def worker_producer(conn: KafkaConnection) -> Producer:
    """The producer for the Spark workers' sinks: librdkafka when installed (it is, with the ``stream`` extra)."""
    if librdkafka_available():
        return LibrdkafkaProducer(conn)
    return _KafkaPythonWorkerProducer(conn)
