"""A Kafka streaming source for Spark written with PySpark's Python Data Source API (format ``tone_kafka``).

Why: Spark's own ``format("kafka")`` needs the spark-sql-kafka connector jar and kafka-clients on the classpath.
This source gives the same shape of rows (topic, partition, offset, timestamp, key, value) and the same semantics
that matter for exactly-once processing:

- offsets are ``{"<partition>": next_offset}`` dicts that Spark stores in the query checkpoint, so a restarted
  query resumes exactly where the last committed batch ended;
- each micro-batch is a fixed offset range per partition (one Spark task per Kafka partition), so a replayed batch
  reads exactly the same records;
- ``maxOffsetsPerTrigger`` caps a batch (Spark's ReadMaxRows read limit), shared across partitions.

Options are Spark's Kafka source options: ``kafka.bootstrap.servers``, ``subscribe`` (one topic),
``startingOffsets`` (earliest | latest | Spark's JSON ``{"topic": {"0": 23, "1": -2}}``, -2 earliest, -1 latest),
``maxOffsetsPerTrigger``, ``failOnDataLoss`` (offsets deleted before they were read: fail, or skip them and count
them), ``kafka.isolation.level`` (read_committed, the default here, or read_uncommitted), and the Java client's
``kafka.security.protocol``, ``kafka.sasl.mechanism``, ``kafka.sasl.jaas.config``. Extra: ``kafka.client`` (auto:
librdkafka through confluent-kafka when installed, else kafka-python; or kafka-python), ``emit`` (records, or
ranges: one row per planned range, for a consumer that reads the records itself, as the tone stream does) and
``maxTasks`` (with emit=ranges: group the ranges into at most this many tasks). The Kafka clients live in
:mod:`tone.kafka.readers`; this module is the Spark side only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadLimit, ReadMaxRows

from streaming.worker import RESOURCES
from tone.errors import DataLossError
from tone.kafka.config import KafkaConnection
from tone.kafka.readers import (
    RangeReader,
    RecordChunk,
    behind_message,
    check_client,
    check_isolation,
    data_loss_message,
    open_reader,
)

log = logging.getLogger(__name__)

SOURCE_NAME = "tone_kafka"
SCHEMA = "topic string, partition int, offset long, timestamp timestamp, key binary, value binary"
# With option emit=ranges the source plans and checkpoints offsets exactly as above but yields one row per Kafka
# partition range instead of its records; the consumer of the rows (streaming/process.py) reads the records itself
# with read_range_chunks(). That skips moving every record Python -> JVM -> Python between the source and mapInArrow.
RANGES_SCHEMA = "topic string, partition int, start_offset long, end_offset long"


class KafkaRange(InputPartition):
    """One Spark task: offsets [start, end) of one Kafka partition."""

    def __init__(self, topic: str, partition: int, start: int, end: int) -> None:
        """Describe the range (must stay picklable: it travels to the Python workers)."""
        self.topic, self.partition, self.start, self.end = topic, partition, start, end


class KafkaRanges(InputPartition):
    """One Spark task over several ranges (emit=ranges with maxTasks): it yields one row per range."""

    def __init__(self, ranges: list[KafkaRange]) -> None:
        """Group ranges (picklable)."""
        self.ranges = ranges


def plan_ranges(topic: str, start: Mapping[str, int], end: Mapping[str, int]) -> list[KafkaRange]:
    """The ranges of a batch from its start and end offsets: each partition with new records, a new one from 0."""
    return [
        KafkaRange(topic, int(p), int(start.get(p, 0)), int(e))
        for p, e in sorted(end.items(), key=lambda kv: int(kv[0]))
        if int(e) > int(start.get(p, 0))
    ]


def group_ranges(ranges: list[KafkaRange], max_tasks: int) -> list[KafkaRanges]:
    """At most ``max_tasks`` groups with about equal record counts (largest range first into the lightest group).

    ``max_tasks`` 0: one group per range (one task per Kafka partition).
    """
    if max_tasks <= 0:
        return [KafkaRanges([r]) for r in ranges]
    groups: list[list[KafkaRange]] = [[] for _ in range(max(1, min(max_tasks, len(ranges))))]
    sizes = [0] * len(groups)
    for r in sorted(ranges, key=lambda r: r.end - r.start, reverse=True):
        i = sizes.index(min(sizes))
        groups[i].append(r)
        sizes[i] += r.end - r.start
    return [KafkaRanges(sorted(g, key=lambda r: r.partition)) for g in groups if g]


class KafkaStreamReader(DataSourceStreamReader):
    """Plans offset ranges on the driver and reads them on the workers."""

    def __init__(self, options: Mapping[str, str]) -> None:
        """Validate options; no connection is opened until Spark asks for offsets."""
        # Spark hands options over case-insensitively (lower-cased keys): look them up the same way.
        self.options = {k.lower(): v for k, v in dict(options).items()}
        self.topic = self.options.get("subscribe", "")
        if not self.topic or "," in self.topic:
            msg = f"the {SOURCE_NAME} source needs option subscribe=<one topic>, got {self.topic!r}"
            raise ValueError(msg)
        self.starting = self.options.get("startingoffsets", "earliest")
        self.starting_at = parse_starting_offsets(self.starting, self.topic)
        self.max_rows = int(self.options.get("maxoffsetspertrigger", "0") or 0)
        self.emit = self.options.get("emit", "records")
        # emit=ranges only: spread the ranges over at most this many tasks (0: one task per Kafka partition). One
        # task per core scores bigger sets at once, and a batch runs in one wave instead of several.
        self.max_tasks = int(self.options.get("maxtasks", "0") or 0)
        # Like Spark's Kafka source: a partition that ends before the checkpointed offset (topic deleted and
        # recreated, broker storage lost) fails the query unless failOnDataLoss=false.
        self.fail_on_data_loss = self.options.get("failondataloss", "true").lower() != "false"
        if self.emit not in ("records", "ranges"):
            msg = f"emit must be records or ranges, got {self.emit!r}"
            raise ValueError(msg)
        self.client = check_client(self.options.get("kafka.client", "auto"))
        self.isolation = check_isolation(self.options.get("kafka.isolation.level", "read_committed"))
        self.conn = KafkaConnection.from_options(self.options)
        self._driver: RangeReader | None = None

    # -- driver side ---------------------------------------------------------------------------------------------
    def _reader(self) -> RangeReader:
        if self._driver is None:
            self._driver = open_reader(self.conn, self.client, self.isolation)
        return self._driver

    def _end_offsets(self) -> dict[str, int]:
        reader = self._reader()
        ends = reader.end_offsets(self.topic, reader.partitions(self.topic))
        return {str(p): e for p, e in ends.items()}

    def _begin_offsets(self, partitions: list[int]) -> dict[int, int]:
        return self._reader().beginning_offsets(self.topic, partitions)

    def initialOffset(self) -> dict[str, int]:  # noqa: N802 - Spark's API name
        """Where a new query starts: per partition the given offset, else its beginning (-2) or current end (-1)."""
        reader = self._reader()
        partitions = reader.partitions(self.topic)
        ends = reader.end_offsets(self.topic, partitions)
        begins = reader.beginning_offsets(self.topic, partitions)
        default = LATEST if self.starting == "latest" else EARLIEST
        out = {}
        for p in partitions:
            at = self.starting_at.get(p, default)
            out[str(p)] = ends[p] if at == LATEST else begins[p] if at == EARLIEST else at
        return out

    def getDefaultReadLimit(self) -> ReadLimit:  # noqa: N802
        """MaxOffsetsPerTrigger as Spark's ReadMaxRows, else everything available."""
        return ReadMaxRows(self.max_rows) if self.max_rows > 0 else ReadAllAvailable()

    def latestOffset(self, start: dict[str, int], limit: ReadLimit) -> dict[str, int]:  # noqa: N802
        """The end of the next batch: everything new, or at most ``limit`` rows spread fairly over partitions."""
        ends = self._end_offsets()
        start = {p: int(start.get(p, 0)) for p in ends}
        if behind := {p: (start[p], ends[p]) for p in ends if ends[p] < start[p]}:
            # Whatever failOnDataLoss says: going on from the new end would leave the store's markers above the new
            # records, which would then look counted already.
            detail = ", ".join(
                f"partition {p}: checkpoint at offset {a}, topic ends at {b}" for p, (a, b) in behind.items()
            )
            raise DataLossError(behind_message(self.topic, detail))
        if self.fail_on_data_loss:
            # Offsets deleted (retention) before this query read them: fail now, saying what was lost, rather than
            # in a task. With failOnDataLoss=false the tasks skip them and count them (tone_stream_lost_offsets).
            begins = self._begin_offsets([int(p) for p in ends])
            if gone := {p: (start[p], begins[int(p)]) for p in ends if start[p] < begins[int(p)]}:
                detail = ", ".join(f"partition {p}: offsets {a}-{b - 1}" for p, (a, b) in gone.items())
                raise DataLossError(data_loss_message(self.topic, detail))
        if not isinstance(limit, ReadMaxRows):
            return ends
        budget = int(limit.max_rows)
        backlog = {p: max(0, ends[p] - start[p]) for p in ends}
        take = dict.fromkeys(ends, 0)
        # Round-robin shares so one busy partition cannot starve the others.
        while budget > 0 and any(backlog[p] > take[p] for p in ends):
            open_parts = [p for p in ends if backlog[p] > take[p]]
            share = max(1, budget // len(open_parts))
            for p in open_parts:
                extra = min(share, backlog[p] - take[p], budget)
                take[p] += extra
                budget -= extra
        return {p: start[p] + take[p] for p in ends}

    def partitions(self, start: dict[str, int], end: dict[str, int]) -> list[Any]:
        """One task per partition that has new records in [start, end) (or grouped: see ``maxTasks``)."""
        ranges = plan_ranges(self.topic, start, end)
        if self.emit == "ranges":
            return group_ranges(ranges, self.max_tasks)
        return ranges

    def commit(self, end: dict[str, int]) -> None:
        """Spark has processed everything before ``end``; offsets live in the checkpoint, nothing to do."""

    def stop(self) -> None:
        """Close the driver's consumer."""
        if self._driver is not None:
            self._driver.close()
            self._driver = None

    # -- worker side ---------------------------------------------------------------------------------------------
    def read(self, partition: InputPartition) -> Iterator[Any]:
        """Yield the range's records as Arrow record batches (far faster than row tuples), or the range rows."""
        if isinstance(partition, KafkaRanges):
            for r in partition.ranges:
                yield (r.topic, r.partition, r.start, r.end)
            return
        if not isinstance(partition, KafkaRange):
            msg = f"unexpected partition {partition!r}"
            raise TypeError(msg)
        for chunk in self.read_range_chunks(partition):
            yield to_arrow(chunk)

    def read_range_chunks(self, partition: KafkaRange) -> Iterator[RecordChunk]:
        """The records of one range as plain column lists, through this worker's reused reader."""
        kind, fingerprint = "kafka-reader", f"{self.client}|{self.isolation}|{self.conn.cache_key()}"
        reader = RESOURCES.get(kind, fingerprint, lambda: open_reader(self.conn, self.client, self.isolation))
        try:
            yield from reader.read_range(partition, fail_on_data_loss=self.fail_on_data_loss)
        except Exception:
            RESOURCES.drop(kind)  # a broken connection must not be reused
            raise


EARLIEST, LATEST = -2, -1  # Spark's JSON startingOffsets values


def parse_starting_offsets(value: str, topic: str) -> dict[int, int]:
    """``startingOffsets``: {} for earliest/latest, else Spark's JSON ``{"<topic>": {"<partition>": offset}}``."""
    if value in ("earliest", "latest"):
        return {}
    try:
        parsed = json.loads(value)
        offsets = parsed[topic] if isinstance(parsed, dict) else None
        if not isinstance(offsets, dict):
            raise TypeError
        out = {int(p): int(o) for p, o in offsets.items()}
    except (ValueError, TypeError, KeyError):
        msg = (
            f'startingOffsets must be earliest, latest or JSON like {{"{topic}": {{"0": 23, "1": -2}}}} '
            f"(-2: earliest, -1: latest), got {value!r}"
        )
        raise ValueError(msg) from None
    if bad := [o for o in out.values() if o < EARLIEST]:
        msg = f"startingOffsets: offsets are >= 0, or -2 (earliest) / -1 (latest); got {bad[0]}"
        raise ValueError(msg)
    return out


def _record_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("topic", pa.string()),
            ("partition", pa.int32()),
            ("offset", pa.int64()),
            ("timestamp", pa.timestamp("us", tz="UTC")),
            ("key", pa.binary()),
            ("value", pa.binary()),
        ]
    )


def to_arrow(chunk: RecordChunk) -> Any:
    """A chunk as an Arrow record batch of the source's record SCHEMA."""
    import pyarrow as pa

    n = len(chunk.offsets)
    stamps = pa.array([t * 1000 for t in chunk.stamps_ms], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    return pa.RecordBatch.from_arrays(
        [
            pa.array([chunk.topic] * n, pa.string()),
            pa.array([chunk.partition] * n, pa.int32()),
            pa.array(chunk.offsets, pa.int64()),
            stamps,
            pa.array(chunk.keys, pa.binary()),
            pa.array(chunk.values, pa.binary()),
        ],
        schema=_record_schema(),
    )


def from_arrow(batch: Any) -> list[RecordChunk]:
    """A record batch of Kafka rows (this source's or Spark's own) as chunks, one per run of one partition.

    Spark's Kafka source gives a task one partition's offset range, but nothing here relies on it.
    """
    import pyarrow as pa

    topics = batch.column("topic").to_pylist()
    partitions = batch.column("partition").to_pylist()
    offsets = batch.column("offset").to_pylist()
    micros = batch.column("timestamp").cast(pa.int64()).to_pylist()
    keys = batch.column("key").to_pylist()
    values = batch.column("value").to_pylist()
    chunks: list[RecordChunk] = []
    for i, (topic, partition) in enumerate(zip(topics, partitions, strict=True)):
        if not chunks or (chunks[-1].topic, chunks[-1].partition) != (topic, partition):
            chunks.append(RecordChunk(topic, partition))
        chunks[-1].add(offsets[i], micros[i] // 1000, keys[i], values[i])
    return chunks


class KafkaDataSource(DataSource):
    """``spark.readStream.format("tone_kafka")``: Kafka without the connector jar."""

    @classmethod
    def name(cls) -> str:
        """The format name."""
        return SOURCE_NAME

    def schema(self) -> str:
        """Same columns as Spark's Kafka source (minus headers and timestampType); with emit=ranges, the ranges."""
        emit = {k.lower(): v for k, v in dict(self.options).items()}.get("emit", "records")
        return RANGES_SCHEMA if emit == "ranges" else SCHEMA

    def streamReader(self, schema: Any) -> KafkaStreamReader:  # noqa: N802, ARG002 - Spark's API
        """A reader bound to this query's options."""
        return KafkaStreamReader(self.options)
