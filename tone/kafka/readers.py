"""Partition offsets and offset-range reads: one implementation per Kafka client behind :class:`RangeReader`.

The Spark source (``streaming/kafka_source.py``) plans offset ranges on the driver with ``partitions`` /
``beginning_offsets`` / ``end_offsets`` and reads them on the workers with ``read_range``. A reader holds one
consumer and is reused by every range a Python worker reads: connecting and fetching metadata afresh for every
range of every micro-batch cost more than reading a small range.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from tone.kafka.clients import librdkafka_available
from tone.kafka.config import KafkaConnection

CHUNK_ROWS: Final = 4096
READ_STALL_TIMEOUT_S: Final = 60.0
PARTITIONS_TIMEOUT_S: Final = 30.0
CLIENTS: Final = ("auto", "kafka-python")

_Record = tuple[int, int, bytes | None, bytes | None]  # offset, timestamp (epoch ms), key, value


class OffsetRange(Protocol):
    """Offsets [start, end) of one partition (the Spark source's ``KafkaRange`` is one)."""

    @property
    def topic(self) -> str:
        """The topic."""

    @property
    def partition(self) -> int:
        """The partition id."""

    @property
    def start(self) -> int:
        """The first offset."""

    @property
    def end(self) -> int:
        """One past the last offset."""


@dataclass
class RecordChunk:
    """Up to CHUNK_ROWS records of one partition as column lists; Arrow only where Spark needs it.

    Tasks of the fused read consume these directly: building Arrow batches and converting them back to Python
    objects (timestamps to datetimes) cost more per record than validating it.
    """

    topic: str
    partition: int
    offsets: list[int] = field(default_factory=list)
    stamps_ms: list[int] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.offsets)

    def add(self, offset: int, timestamp_ms: int, key: bytes | None, value: bytes | None) -> None:
        """Append one record."""
        self.offsets.append(offset)
        self.stamps_ms.append(timestamp_ms)
        self.keys.append(key)
        self.values.append(value)

    def take(self) -> RecordChunk:
        """The records gathered so far as a chunk of their own; this one starts empty again."""
        out = RecordChunk(self.topic, self.partition, self.offsets, self.stamps_ms, self.keys, self.values)
        self.offsets, self.stamps_ms, self.keys, self.values = [], [], [], []
        return out


class RangeReader(Protocol):
    """Offsets of a topic's partitions and the records of offset ranges, through one Kafka client."""

    def partitions(self, topic: str) -> list[int]:
        """The topic's partition ids (waits up to PARTITIONS_TIMEOUT_S for a topic being created)."""

    def beginning_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """The first offset still in each partition."""

    def end_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """The offset after the last record of each partition (the high-water mark)."""

    def read_range(self, offsets: OffsetRange) -> Iterator[RecordChunk]:
        """The range's records, in offset order, in chunks of at most CHUNK_ROWS."""

    def close(self) -> None:
        """Close the consumer."""


def _chunks(offsets: OffsetRange, records: Iterator[_Record]) -> Iterator[RecordChunk]:
    pending = RecordChunk(offsets.topic, offsets.partition)
    for record in records:
        pending.add(*record)
        if len(pending) >= CHUNK_ROWS:
            yield pending.take()
    if len(pending):
        yield pending.take()


def _check_stall(offsets: OffsetRange, position: int, last_progress: float) -> None:
    if time.monotonic() - last_progress > READ_STALL_TIMEOUT_S:
        msg = (
            f"reading {offsets.topic}[{offsets.partition}] stalled at offset {position} (expected up to {offsets.end})"
        )
        raise TimeoutError(msg)


def _wait_for_partitions(conn: KafkaConnection, topic: str, lookup: Any) -> list[int]:
    deadline = time.monotonic() + PARTITIONS_TIMEOUT_S
    while True:
        ids = lookup()
        if ids:
            return sorted(ids)
        if time.monotonic() > deadline:
            msg = f"topic {topic!r} does not exist on {conn.bootstrap}"
            raise RuntimeError(msg)
        time.sleep(0.5)


class LibrdkafkaReader:
    """:class:`RangeReader` on librdkafka (confluent-kafka): records are fetched and decoded in C."""

    def __init__(self, conn: KafkaConnection) -> None:
        """Create the consumer (it connects lazily, in librdkafka's threads)."""
        from confluent_kafka import Consumer

        self.conn = conn
        self._consumer = Consumer(
            conn.librdkafka()
            | {
                # assign() never joins a group; librdkafka still wants an id, and nothing is ever committed under it
                "group.id": "tone-spark-source",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "fetch.max.bytes": 64 * 1024 * 1024,
                "max.partition.fetch.bytes": 8 * 1024 * 1024,
                # A reused consumer re-assigned to the next range otherwise waits out an in-flight long-poll fetch:
                # measured 0.51 s per range with the default 500 ms, 0.02 s with 10 ms.
                "fetch.wait.max.ms": 10,
            }
        )

    def partitions(self, topic: str) -> list[int]:
        """The topic's partition ids."""

        def lookup() -> list[int]:
            meta = self._consumer.list_topics(topic, timeout=10).topics.get(topic)
            return [] if meta is None or meta.error is not None else list(meta.partitions)

        return _wait_for_partitions(self.conn, topic, lookup)

    def _watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        from confluent_kafka import TopicPartition

        low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        return int(low), int(high)

    def beginning_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """The low watermark of each partition."""
        return {p: self._watermarks(topic, p)[0] for p in partitions}

    def end_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """The high watermark of each partition (ListOffsets latest: the offset after the last committed record)."""
        return {p: self._watermarks(topic, p)[1] for p in partitions}

    def read_range(self, offsets: OffsetRange) -> Iterator[RecordChunk]:
        """The range's records in chunks."""
        return _chunks(offsets, self._records(offsets))

    def _records(self, offsets: OffsetRange) -> Iterator[_Record]:
        from confluent_kafka import KafkaError, TopicPartition

        consumer = self._consumer
        consumer.assign([TopicPartition(offsets.topic, offsets.partition, offsets.start)])
        try:
            position, last_progress = offsets.start, time.monotonic()
            while position < offsets.end:
                # consume() waits until it has num_messages or the timeout passes: never ask for more than is left.
                messages = consumer.consume(num_messages=min(CHUNK_ROWS, offsets.end - position), timeout=0.5)
                if not messages:
                    _check_stall(offsets, position, last_progress)
                    continue
                last_progress = time.monotonic()
                for m in messages:
                    error = m.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001 - librdkafka's own name
                            continue
                        msg = f"reading {offsets.topic}[{offsets.partition}]: {error}"
                        raise RuntimeError(msg)
                    offset = int(m.offset() or 0)  # always set on a message without an error
                    if offset >= offsets.end:
                        break
                    yield offset, int(m.timestamp()[1] or 0), m.key(), m.value()
                    position = offset + 1
        finally:
            consumer.unassign()

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()


class KafkaPythonReader:
    """:class:`RangeReader` on kafka-python (pure Python; the fallback without confluent-kafka)."""

    def __init__(self, conn: KafkaConnection) -> None:
        """Create the consumer."""
        from kafka import KafkaConsumer

        self.conn = conn
        self._consumer = KafkaConsumer(
            **conn.kafka_python(), enable_auto_commit=False, group_id=None, max_partition_fetch_bytes=8 * 1024 * 1024
        )

    def partitions(self, topic: str) -> list[int]:
        """The topic's partition ids."""
        return _wait_for_partitions(self.conn, topic, lambda: self._consumer.partitions_for_topic(topic))

    def _tps(self, topic: str, partitions: list[int]) -> list[Any]:
        from kafka import TopicPartition

        return [TopicPartition(topic, p) for p in partitions]

    def beginning_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """The first offset of each partition."""
        begins = self._consumer.beginning_offsets(self._tps(topic, partitions))
        return {tp.partition: int(v) for tp, v in begins.items()}

    def end_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """The high watermark of each partition."""
        ends = self._consumer.end_offsets(self._tps(topic, partitions))
        return {tp.partition: int(v) for tp, v in ends.items()}

    def read_range(self, offsets: OffsetRange) -> Iterator[RecordChunk]:
        """The range's records in chunks."""
        return _chunks(offsets, self._records(offsets))

    def _records(self, offsets: OffsetRange) -> Iterator[_Record]:
        from kafka import TopicPartition

        tp = TopicPartition(offsets.topic, offsets.partition)
        consumer = self._consumer
        consumer.assign([tp])
        consumer.seek(tp, offsets.start)
        try:
            position, last_progress = offsets.start, time.monotonic()
            while position < offsets.end:
                records = consumer.poll(timeout_ms=500, max_records=CHUNK_ROWS).get(tp, [])
                if not records:
                    _check_stall(offsets, position, last_progress)
                    continue
                last_progress = time.monotonic()
                for r in records:
                    if r.offset >= offsets.end:
                        break
                    yield r.offset, r.timestamp, r.key, r.value
                position = max(position, records[-1].offset + 1)
        finally:
            consumer.assign([])

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()


def check_client(client: str) -> str:
    """A valid ``kafka.client`` option value, or ValueError naming the allowed ones."""
    if client not in CLIENTS:
        msg = f"kafka.client must be {' or '.join(CLIENTS)}, got {client!r}"
        raise ValueError(msg)
    return client


def open_reader(conn: KafkaConnection, client: str = "auto") -> RangeReader:
    """A reader on librdkafka when installed (``auto``), or on kafka-python."""
    if check_client(client) == "auto" and librdkafka_available():
        return LibrdkafkaReader(conn)
    return KafkaPythonReader(conn)
