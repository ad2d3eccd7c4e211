"""The project's Kafka producers, built from one :class:`~tone.kafka.config.KafkaConnection`.

Every producer is idempotent (the broker drops a retried duplicate) and counts delivery reports: ``flush`` waits
for every queued record and raises :class:`DeliveryError`, naming how many were not acknowledged, if any failed.
Nothing is reported as sent that the broker did not acknowledge.

librdkafka (confluent-kafka) is the client: measured in one Spark task, kafka-python's ``send`` cost 80-170 us a
record; librdkafka batches, compresses and delivers in C. kafka-python stays as a fallback where confluent-kafka
has no wheel.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from tone.errors import ToneError
from tone.kafka.config import LIBRDKAFKA_PRODUCER_EXTRAS, PRODUCER_DEFAULTS, KafkaConnection, kafka_python_names

Headers = list[tuple[str, str | bytes | None]]


class DeliveryError(ToneError):
    """Records were not acknowledged by the broker; the message says how many and the first errors."""


@dataclass
class DeliveryStats:
    """Records handed to the producer, acknowledged by the broker, and failed."""

    queued: int = 0
    acked: int = 0
    failed: int = 0


class Producer(Protocol):
    """What every producer of the project offers."""

    stats: DeliveryStats

    def send(
        self, topic: str, *, key: bytes | None = None, value: bytes | None, headers: Headers | None = None
    ) -> None:
        """Queue one record."""

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every record is acknowledged or failed (default: the delivery timeout); raise if any failed."""

    def close(self) -> None:
        """Flush and release the connection."""


def _flush_wait(config: dict[str, Any]) -> float:
    # Every record is acknowledged or failed by its delivery timeout; a flush waits that long, and a little more.
    return float(config["delivery.timeout.ms"]) / 1000 + 5.0


def librdkafka_available() -> bool:
    """Whether confluent-kafka (librdkafka) can be imported here."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return False
    return True


class _Reports:
    """Delivery accounting shared by both clients (callbacks arrive on the client's own threads)."""

    def __init__(self, conn: KafkaConnection) -> None:
        self.conn = conn
        self.stats = DeliveryStats()
        self._errors: list[str] = []
        self._lock = threading.Lock()
        self._checked = DeliveryStats()
        self.refused: str | None = None  # the broker refused our credentials or TLS: no retry will help

    def refuse(self, detail: str) -> None:
        """Record that the broker refused the connection (authentication or TLS); flush stops waiting."""
        with self._lock:
            self.refused = detail

    def delivered(self, error: object | None, topic: str) -> None:
        with self._lock:
            if error is None:
                self.stats.acked += 1
            else:
                self.stats.failed += 1
                if len(self._errors) < 5:
                    self._errors.append(f"{topic}: {error}")

    def check(self, not_flushed: int, timeout: float) -> None:
        """Raise if records failed or are still queued since the last check."""
        if self.refused is not None:
            msg = (
                f"the broker at {self.conn.bootstrap} refused this client: {self.refused}. Check "
                "TONE_KAFKA_SECURITY_PROTOCOL, TONE_KAFKA_SASL_MECHANISM, TONE_KAFKA_SASL_USERNAME, "
                "TONE_KAFKA_SASL_PASSWORD and TONE_KAFKA_SSL_CA_FILE"
            )
            raise DeliveryError(msg)
        with self._lock:
            failed = self.stats.failed - self._checked.failed
            queued = self.stats.queued - self._checked.queued
            errors, self._errors = self._errors, []
            self._checked = DeliveryStats(self.stats.queued, self.stats.acked, self.stats.failed)
        if failed or not_flushed:
            missing = failed + not_flushed
            msg = (
                f"{missing} of {queued} messages were not acknowledged by the broker at {self.conn.bootstrap} "
                f"({failed} failed, {not_flushed} still queued after {timeout:.0f} s); first errors: {errors}. "
                "Check that the broker is up (tone stack status) and the topic exists"
            )
            raise DeliveryError(msg)


class LibrdkafkaProducer:
    """An idempotent librdkafka producer with delivery accounting (see the module docstring)."""

    def __init__(self, conn: KafkaConnection, **overrides: Any) -> None:
        """Connect lazily (librdkafka connects in its own threads); ``overrides`` in librdkafka's names."""
        from confluent_kafka import Producer as RdProducer

        self._reports = _Reports(conn)
        self.stats = self._reports.stats
        config = {**conn.librdkafka(), **PRODUCER_DEFAULTS, **LIBRDKAFKA_PRODUCER_EXTRAS, **overrides}
        config["error_cb"] = self._on_error
        self._wait_s = _flush_wait(config)
        self._producer = RdProducer(config)

    def _on_delivery(self, err: Any, msg: Any) -> None:
        self._reports.delivered(err, msg.topic())

    def _on_error(self, err: Any) -> None:
        from confluent_kafka import KafkaError

        # Wrong credentials or a certificate the client does not trust: librdkafka would retry until the delivery
        # timeout; no retry can succeed, so flush says so at once.
        if err.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL):  # noqa: SLF001 - librdkafka's own names
            self._reports.refuse(err.str())

    def send(
        self, topic: str, *, key: bytes | None = None, value: bytes | None, headers: Headers | None = None
    ) -> None:
        """Queue one record (waits for room when the local queue is full)."""
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=self._on_delivery)
                break
            except BufferError:
                self._producer.poll(0.05)
        self.stats.queued += 1
        self._producer.poll(0)

    def flush(self, timeout: float | None = None) -> None:
        """Wait for every queued record; raise DeliveryError if any failed, did not leave in time, or was refused."""
        wait = self._wait_s if timeout is None else timeout
        deadline = time.monotonic() + wait
        left = self._producer.flush(min(1.0, wait))
        while left and self._reports.refused is None and time.monotonic() < deadline:
            left = self._producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        self._reports.check(left, wait)

    def close(self) -> None:
        """Flush (librdkafka has no close: the handle goes with the object)."""
        self.flush()


class KafkaPythonProducer:
    """The same on kafka-python (the fallback where confluent-kafka has no wheel)."""

    def __init__(self, conn: KafkaConnection, **overrides: Any) -> None:
        """Connect; ``overrides`` in kafka-python's names."""
        from kafka import KafkaProducer

        self._reports = _Reports(conn)
        self.stats = self._reports.stats
        config = kafka_python_names(PRODUCER_DEFAULTS) | overrides
        self._wait_s = _flush_wait({"delivery.timeout.ms": config["delivery_timeout_ms"]})
        self._producer = KafkaProducer(**conn.kafka_python(), **config)

    def send(
        self, topic: str, *, key: bytes | None = None, value: bytes | None, headers: Headers | None = None
    ) -> None:
        """Queue one record."""
        future = self._producer.send(topic, key=key, value=value, headers=headers)
        self.stats.queued += 1
        future.add_callback(lambda _meta: self._reports.delivered(None, topic))
        future.add_errback(lambda exc: self._reports.delivered(exc, topic))

    def flush(self, timeout: float | None = None) -> None:
        """Wait for every queued record; raise DeliveryError if any failed or did not leave in time."""
        wait = self._wait_s if timeout is None else timeout
        try:
            self._producer.flush(timeout=wait)
            left = 0
        except Exception:  # noqa: BLE001 - kafka-python raises its own timeout type; counted below
            left = self.stats.queued - self.stats.acked - self.stats.failed
        self._reports.check(left, wait)

    def close(self) -> None:
        """Flush and close the connection."""
        try:
            self.flush()
        finally:
            self._producer.close(timeout=5)


def open_producer(conn: KafkaConnection, **overrides: Any) -> Producer:
    """The project's producer: librdkafka when installed (``overrides`` in its names), else kafka-python."""
    if librdkafka_available():
        return LibrdkafkaProducer(conn, **overrides)
    return KafkaPythonProducer(conn, **{k.replace(".", "_"): v for k, v in overrides.items()})


class GroupOffsets:
    """Commits a stream's processed offsets to a consumer group, for monitoring only.

    Spark keeps its Kafka offsets in its checkpoint and never commits them to Kafka (SPARK-34854), so
    `kafka-consumer-groups --describe` and lag exporters see nothing. After each batch the stream commits the next
    offset of every partition it counted to a group named after its query; the checkpoint stays the truth (nothing
    ever reads these offsets back).
    """

    def __init__(self, conn: KafkaConnection, group: str) -> None:
        """A consumer that joins no group (commits only), on the connection."""
        from confluent_kafka import Consumer

        self.group = group
        self._consumer = Consumer(conn.librdkafka() | {"group.id": group, "enable.auto.commit": False})

    def commit(self, topic: str, next_offsets: dict[int, int]) -> None:
        """Record ``next_offsets`` (partition -> the first offset not yet processed) as the group's position."""
        from confluent_kafka import TopicPartition

        if next_offsets:
            parts = [TopicPartition(topic, p, o) for p, o in sorted(next_offsets.items())]
            self._consumer.commit(offsets=parts, asynchronous=False)

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()
