"""Partition offsets and offset-range reads: one implementation per Kafka client behind :class:`RangeReader`.

The Spark source (``streaming/kafka_source.py``) plans offset ranges on the driver with ``partitions`` /
``beginning_offsets`` / ``end_offsets`` and reads them on the workers with ``read_range``. A reader holds one
consumer and is reused by every range a Python worker reads: connecting and fetching metadata afresh for every
range of every micro-batch cost more than reading a small range.

Offsets are not records. A topic written by transactional producers holds commit/abort markers at offsets no record
uses, and (read_committed, the default) the records of aborted transactions are never returned; a compacted topic
has holes. So a range ends when the consumer's *position* reaches its end, not when a record at ``end - 1`` arrives.
Offsets deleted by retention before they were read are data loss: :class:`~tone.errors.DataLossError` naming them,
or (``fail_on_data_loss=False``) the read goes on from the earliest offset left and counts the skipped ones on the
next chunk (:attr:`RecordChunk.lost`, the offset ranges), as Spark's Kafka source does with ``failOnDataLoss``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from tone.errors import DataLossError
from tone.kafka.clients import librdkafka_available
from tone.kafka.config import KafkaConnection

CHUNK_ROWS: Final = 4096
READ_STALL_TIMEOUT_S: Final = 60.0
PARTITIONS_TIMEOUT_S: Final = 30.0
CLIENTS: Final = ("auto", "kafka-python")
ISOLATION_LEVELS: Final = ("read_committed", "read_uncommitted")

_Record = tuple[int, int, bytes | None, bytes | None]  # offset, timestamp (epoch ms), key, value


@dataclass(frozen=True)
class _Lost:
    """Offsets [start, end) deleted before they were read: yielded between records by the readers."""

    start: int
    end: int


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


@dataclass(frozen=True)
class Offsets:
    """An :class:`OffsetRange` of its own (the Spark source has ``KafkaRange``): offsets [start, end) of a partition."""

    topic: str
    partition: int
    start: int
    end: int


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
    # Offset ranges [start, end) deleted before they were read, just before this chunk (fail_on_data_loss=False).
    lost: list[tuple[int, int]] = field(default_factory=list)
    # The reader's position after this chunk when it is a range's last: every offset before it was read (records,
    # transaction markers, aborted records alike); -1 when not known (records handed over by Spark).
    end: int = -1

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
        out = RecordChunk(
            self.topic, self.partition, self.offsets, self.stamps_ms, self.keys, self.values, self.lost, self.end
        )
        self.offsets, self.stamps_ms, self.keys, self.values, self.lost, self.end = [], [], [], [], [], -1
        return out


class RangeReader(Protocol):
    """Offsets of a topic's partitions and the records of offset ranges, through one Kafka client."""

    def partitions(self, topic: str) -> list[int]:
        """The topic's partition ids (waits up to PARTITIONS_TIMEOUT_S for a topic being created)."""

    def beginning_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """The first offset still in each partition."""

    def end_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """The offset after the last record of each partition (the high-water mark)."""

    def read_range(self, offsets: OffsetRange, *, fail_on_data_loss: bool = True) -> Iterator[RecordChunk]:
        """The range's records, in offset order, in chunks of at most CHUNK_ROWS (see the module docstring)."""

    def read_header(self, offsets: OffsetRange, name: str) -> Iterator[RecordChunk]:
        """As :meth:`read_range`, but each chunk's ``values`` hold the records' header ``name`` (None without one).

        Offsets deleted meanwhile are skipped. A live source finds where it stopped with it (producer.live).
        """

    def close(self) -> None:
        """Close the consumer."""


def _chunks(offsets: OffsetRange, records: Iterator[_Record | _Lost]) -> Iterator[RecordChunk]:
    pending = RecordChunk(offsets.topic, offsets.partition)
    for record in records:
        if isinstance(record, _Lost):
            pending.lost.append((record.start, record.end))
            continue
        pending.add(*record)
        if len(pending) >= CHUNK_ROWS:
            yield pending.take()
    # The last chunk carries the reader's position, even with no record in it: a range may end in (or hold only)
    # transaction markers and aborted records, and counting stops there, not at its last record.
    pending.end = offsets.end
    yield pending.take()


def _header(headers: Any, name: str) -> bytes | None:
    """The last value of header ``name`` among a record's (key, value) pairs, or None."""
    found = None
    for key, value in headers or ():
        if key == name:
            found = value
    return found


def _check_stall(offsets: OffsetRange, position: int, last_progress: float) -> None:
    if time.monotonic() - last_progress > READ_STALL_TIMEOUT_S:
        msg = (
            f"reading {offsets.topic}[{offsets.partition}] stalled at offset {position} (expected up to {offsets.end})"
        )
        raise TimeoutError(msg)


def behind_message(topic: str, detail: str) -> str:
    """What to say when ``topic``'s offsets went backwards (``detail``: where): it was recreated or its data lost.

    Whatever TONE_FAIL_ON_DATA_LOSS says: the offsets the stream counted (in Redis) or read (in its checkpoint) are
    above the topic's end, so new records at or below them would count as already counted, silently.
    """
    return (
        f"topic {topic!r} went back behind what this query has read or counted ({detail}): it was recreated or "
        "its data was lost. Its new records would look counted already. Start a new query (tone stream --query NEW: "
        "a new checkpoint and fresh offset bookkeeping in Redis), whatever TONE_FAIL_ON_DATA_LOSS says"
    )


def offsets_behind(ends: Mapping[int, int], markers: Mapping[int, int | None]) -> dict[int, tuple[int, int]]:
    """Partitions whose end offset is below what the store counted: partition -> (marker, end).

    A partition's end never moves back, and the store's marker never passes it; where it has, the topic was
    recreated.
    """
    return {
        p: (marker, ends[p]) for p, marker in markers.items() if marker is not None and p in ends and ends[p] <= marker
    }


def data_loss_message(topic: str, detail: str) -> str:
    """What to say when offsets of ``topic`` were deleted before the stream read them (``detail``: which)."""
    return (
        f"offsets of topic {topic!r} were deleted (retention) before the stream read them ({detail}); their tweets are "
        "not counted. Raise the topic's retention.ms above the stream's worst lag, and restart with "
        "TONE_FAIL_ON_DATA_LOSS=false (option failOnDataLoss=false) to go on from the earliest offsets left; the "
        "skipped offsets are then counted in tone_stream_lost_offsets_total"
    )


def _data_lost(offsets: OffsetRange, position: int, earliest: int, *, fail: bool) -> _Lost:
    """Offsets [position, earliest) are gone: raise DataLossError, or (``fail`` False) the ones this range skips."""
    if fail:
        detail = f"partition {offsets.partition}: offsets {position}-{earliest - 1}"
        raise DataLossError(data_loss_message(offsets.topic, detail))
    return _Lost(position, min(earliest, offsets.end))


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

    def __init__(self, conn: KafkaConnection, isolation: str = "read_committed") -> None:
        """Create the consumer (it connects lazily, in librdkafka's threads)."""
        from confluent_kafka import Consumer

        self.conn = conn
        self._consumer = Consumer(
            conn.librdkafka()
            | {
                "isolation.level": isolation,
                # An offset deleted by retention is an error to handle (data loss), not a silent jump to the end.
                "auto.offset.reset": "error",
                # Tells where the log ends when only markers or aborted records are left of a range.
                "enable.partition.eof": True,
                # assign() never joins a group; librdkafka still wants an id, and nothing is ever committed under it
                "group.id": "tone-spark-source",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "fetch.max.bytes": 64 * 1024 * 1024,
                "max.partition.fetch.bytes": 8 * 1024 * 1024,
                # A reused consumer re-assigned to the next range otherwise waits out an in-flight long-poll fetch
                # (the default 500 ms; docs/benchmarks.md, "Figures behind code").
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

    def read_range(self, offsets: OffsetRange, *, fail_on_data_loss: bool = True) -> Iterator[RecordChunk]:
        """The range's records in chunks."""
        return _chunks(offsets, self._records(offsets, fail_on_data_loss))

    def read_header(self, offsets: OffsetRange, name: str) -> Iterator[RecordChunk]:
        """The range's records with their header ``name`` in place of their values."""
        return _chunks(offsets, self._records(offsets, False, header=name))

    def _records(
        self, offsets: OffsetRange, fail_on_data_loss: bool, header: str | None = None
    ) -> Iterator[_Record | _Lost]:
        from confluent_kafka import KafkaError, TopicPartition

        consumer = self._consumer
        tp = TopicPartition(offsets.topic, offsets.partition, offsets.start)
        consumer.assign([tp])
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
                    if error is None:
                        offset = int(m.offset() or 0)  # always set on a message without an error
                        position = offset + 1
                        if offset >= offsets.end:
                            break
                        if header is None:
                            yield offset, int(m.timestamp()[1] or 0), m.key(), m.value()
                        else:
                            yield offset, int(m.timestamp()[1] or 0), m.key(), _header(m.headers(), header)
                    elif error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001 - librdkafka's own name
                        # The end of what this consumer may read: past any trailing markers and aborted records.
                        position = max(position, int(m.offset() or 0))
                    elif error.code() == KafkaError._AUTO_OFFSET_RESET:  # noqa: SLF001
                        earliest = self._watermarks(offsets.topic, offsets.partition)[0]
                        yield _data_lost(offsets, position, earliest, fail=fail_on_data_loss)
                        position = earliest
                        consumer.assign([TopicPartition(offsets.topic, offsets.partition, earliest)])
                        break
                    else:
                        msg = f"reading {offsets.topic}[{offsets.partition}]: {error}"
                        raise RuntimeError(msg)
        finally:
            consumer.unassign()

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()


class KafkaPythonReader:
    """:class:`RangeReader` on kafka-python (pure Python; the fallback without confluent-kafka)."""

    def __init__(self, conn: KafkaConnection, isolation: str = "read_committed") -> None:
        """Create the consumer."""
        from kafka import KafkaConsumer

        self.conn = conn
        self._consumer = KafkaConsumer(
            **conn.kafka_python(),
            enable_auto_commit=False,
            group_id=None,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            isolation_level=isolation,
            auto_offset_reset="none",  # an offset deleted by retention raises OffsetOutOfRangeError: data loss
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

    def read_range(self, offsets: OffsetRange, *, fail_on_data_loss: bool = True) -> Iterator[RecordChunk]:
        """The range's records in chunks."""
        return _chunks(offsets, self._records(offsets, fail_on_data_loss))

    def read_header(self, offsets: OffsetRange, name: str) -> Iterator[RecordChunk]:
        """The range's records with their header ``name`` in place of their values."""
        return _chunks(offsets, self._records(offsets, False, header=name))

    def _records(
        self, offsets: OffsetRange, fail_on_data_loss: bool, header: str | None = None
    ) -> Iterator[_Record | _Lost]:
        from kafka import TopicPartition
        from kafka.errors import OffsetOutOfRangeError

        tp = TopicPartition(offsets.topic, offsets.partition)
        consumer = self._consumer
        consumer.assign([tp])
        consumer.seek(tp, offsets.start)
        try:
            position, last_progress = offsets.start, time.monotonic()
            while position < offsets.end:
                try:
                    records = consumer.poll(timeout_ms=500, max_records=CHUNK_ROWS).get(tp, [])
                except OffsetOutOfRangeError:
                    earliest = self.beginning_offsets(offsets.topic, [offsets.partition])[offsets.partition]
                    yield _data_lost(offsets, position, earliest, fail=fail_on_data_loss)
                    position = earliest
                    consumer.seek(tp, earliest)
                    continue
                for r in records:
                    if r.offset >= offsets.end:
                        break
                    yield r.offset, r.timestamp, r.key, r.value if header is None else _header(r.headers, header)
                # The fetch position moves past markers and aborted records that poll() never returns.
                moved = max(consumer.position(tp) or 0, records[-1].offset + 1 if records else 0)
                if moved > position:
                    position, last_progress = moved, time.monotonic()
                else:
                    _check_stall(offsets, position, last_progress)
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


def check_isolation(level: str) -> str:
    """A valid ``kafka.isolation.level`` option value, or ValueError naming the allowed ones."""
    if level not in ISOLATION_LEVELS:
        msg = f"kafka.isolation.level must be {' or '.join(ISOLATION_LEVELS)}, got {level!r}"
        raise ValueError(msg)
    return level


def open_reader(conn: KafkaConnection, client: str = "auto", isolation: str = "read_committed") -> RangeReader:
    """A reader on librdkafka when installed (``auto``), or on kafka-python; ``isolation``: what it reads."""
    if check_client(client) == "auto" and librdkafka_available():
        return LibrdkafkaReader(conn, check_isolation(isolation))
    return KafkaPythonReader(conn, check_isolation(isolation))
