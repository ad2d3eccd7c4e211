"""A Kafka streaming source for Spark written with PySpark's Python Data Source API, over kafka-python.

Why: Spark's own ``format("kafka")`` needs the spark-sql-kafka connector jar and kafka-clients, which cannot be
installed everywhere (no Maven access here). This source gives the same shape of rows (topic, partition, offset,
timestamp, key, value) and the same semantics that matter for exactly-once processing:

- offsets are ``{"<partition>": next_offset}`` dicts that Spark stores in the query checkpoint, so a restarted
  query resumes exactly where the last committed batch ended;
- each micro-batch is a fixed offset range per partition (one Spark task per Kafka partition), so a replayed batch
  reads exactly the same records;
- ``maxOffsetsPerTrigger`` caps a batch (Spark's ReadMaxRows read limit), shared across partitions.

Options mirror Spark's Kafka source: ``kafka.bootstrap.servers``, ``subscribe`` (one topic), ``startingOffsets``
(earliest | latest), ``maxOffsetsPerTrigger``, and ``kafka.*`` client settings (security protocol, SASL). Extra:
``kafka.client`` (auto: librdkafka through confluent-kafka when installed, else kafka-python; or kafka-python),
``emit`` (records, or ranges: one row per planned range, for a consumer that reads the records itself, as the tone
stream does) and ``maxTasks`` (with emit=ranges: group the ranges into at most this many tasks).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadLimit, ReadMaxRows

from streaming import fastkafka
from tone.settings import librdkafka_names

log = logging.getLogger(__name__)

SOURCE_NAME = "tone_kafka"
SCHEMA = "topic string, partition int, offset long, timestamp timestamp, key binary, value binary"
# With option emit=ranges the source plans and checkpoints offsets exactly as above but yields one row per Kafka
# partition range instead of its records; the consumer of the rows (streaming/process.py) reads the records itself
# with read_range(). That skips moving every record Python -> JVM -> Python between the source and mapInArrow.
RANGES_SCHEMA = "topic string, partition int, start_offset long, end_offset long"
ARROW_BATCH_ROWS = 4096
_Record = tuple[int, int, bytes | None, bytes | None]  # offset, timestamp (epoch ms), key, value
READ_STALL_TIMEOUT_S = 60.0

_WORKER_CONSUMERS: dict[str, Any] = {}  # per Python worker process, keyed by client config

# kafka-python settings that may be passed as kafka.<name> options (Spark's naming uses dots).
_CLIENT_OPTIONS = {
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.plain.username": "sasl_plain_username",
    "sasl.plain.password": "sasl_plain_password",
    "client.id": "client_id",
}


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


def group_ranges(ranges: list[KafkaRange], max_tasks: int) -> list[KafkaRanges]:
    """At most ``max_tasks`` groups with about equal record counts (largest range first into the lightest group)."""
    groups: list[list[KafkaRange]] = [[] for _ in range(max(1, min(max_tasks, len(ranges))))]
    sizes = [0] * len(groups)
    for r in sorted(ranges, key=lambda r: r.end - r.start, reverse=True):
        i = sizes.index(min(sizes))
        groups[i].append(r)
        sizes[i] += r.end - r.start
    return [KafkaRanges(sorted(g, key=lambda r: r.partition)) for g in groups if g]


def client_config(options: Mapping[str, str]) -> dict[str, Any]:
    """kafka-python client settings from Spark-style ``kafka.*`` options."""
    bootstrap = options.get("kafka.bootstrap.servers")
    if not bootstrap:
        msg = f"the {SOURCE_NAME} source needs option kafka.bootstrap.servers"
        raise ValueError(msg)
    config: dict[str, Any] = {"bootstrap_servers": bootstrap.split(",")}
    for spark_name, python_name in _CLIENT_OPTIONS.items():
        if f"kafka.{spark_name}" in options:
            config[python_name] = options[f"kafka.{spark_name}"]
    return config


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
        if self.starting not in ("earliest", "latest"):
            msg = f"startingOffsets must be earliest or latest, got {self.starting!r}"
            raise ValueError(msg)
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
        client = self.options.get("kafka.client", "auto")
        if client not in ("auto", "kafka-python"):
            msg = f"kafka.client must be auto or kafka-python, got {client!r}"
            raise ValueError(msg)
        # auto: librdkafka (confluent-kafka) when installed; it reads and decodes records in C.
        self.librdkafka = client == "auto" and fastkafka.available()
        self.config = client_config(self.options)
        self._consumer: Any = None
        self._rd_consumer: Any = None

    # -- driver side ---------------------------------------------------------------------------------------------
    def _driver_consumer(self) -> Any:
        if self._consumer is None:
            from kafka import KafkaConsumer

            self._consumer = KafkaConsumer(**self.config, enable_auto_commit=False, group_id=None)
        return self._consumer

    def _partitions(self) -> list[Any]:
        from kafka import TopicPartition

        consumer = self._driver_consumer()
        deadline = time.monotonic() + 30
        while True:
            ids = consumer.partitions_for_topic(self.topic)
            if ids:
                return [TopicPartition(self.topic, p) for p in sorted(ids)]
            if time.monotonic() > deadline:
                msg = f"topic {self.topic!r} does not exist on {self.config['bootstrap_servers']}"
                raise RuntimeError(msg)
            time.sleep(0.5)

    def _end_offsets(self) -> dict[str, int]:
        """Current end of every partition: the larger of ListOffsets and a Fetch response's high-water mark.

        Some Kafka-protocol brokers (Tansu 0.6, measured) answer ListOffsets(LATEST) with the start of the last
        record batch, so a query would wait for more data before reading the last batch; a Fetch's high-water
        mark is right. One small fetch from just before the reported end gets it.
        """
        parts = self._partitions()
        if self.librdkafka:
            return self._end_offsets_confluent([tp.partition for tp in parts])
        consumer = self._driver_consumer()
        listed = consumer.end_offsets(parts)
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, max(0, int(listed[tp]) - 1))
        highwater: dict[Any, int] = {}
        deadline = time.monotonic() + 2.0
        while len(highwater) < len(parts) and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200, max_records=1)
            for tp in parts:
                hw = consumer.highwater(tp)
                if hw is not None:
                    highwater[tp] = int(hw)
        return {str(tp.partition): max(int(listed[tp]), highwater.get(tp, 0)) for tp in parts}

    def _end_offsets_confluent(self, ids: list[int]) -> dict[str, int]:
        """The same with librdkafka: its cached watermark is the high-water mark of the latest Fetch response.

        kafka-python's ``highwater()`` could answer from a fetch made before the seek, so the last records of a
        burst waited for later triggers (measured: three extra 0.5 s batches of 7-8 records after a 60,000-tweet
        replay).
        """
        from confluent_kafka import Consumer, TopicPartition

        if self._rd_consumer is None:
            self._rd_consumer = Consumer(librdkafka_config(self.config))
        consumer = self._rd_consumer
        listed = {p: int(consumer.get_watermark_offsets(TopicPartition(self.topic, p), 10, False)[1]) for p in ids}
        probe = [TopicPartition(self.topic, p, listed[p] - 1) for p in ids if listed[p] > 0]
        seen: set[int] = set()
        if probe:
            consumer.assign(probe)
            deadline = time.monotonic() + 2.0
            while len(seen) < len(probe) and time.monotonic() < deadline:
                m = consumer.poll(0.05)  # returns at the first message; consume() would wait for a full batch
                if m is not None and m.error() is None and m.partition() is not None:
                    seen.add(int(m.partition()))  # this partition's fetch response has been processed
            consumer.unassign()
        ends = {}
        for p in ids:
            high = listed[p]
            if p in seen:
                high = max(high, int(consumer.get_watermark_offsets(TopicPartition(self.topic, p), cached=True)[1]))
            ends[str(p)] = high
        return ends

    def initialOffset(self) -> dict[str, int]:  # noqa: N802 - Spark's API name
        """Where a new query starts: the beginning (earliest) or the current end (latest) of every partition."""
        if self.starting == "latest":
            return self._end_offsets()
        consumer = self._driver_consumer()
        parts = self._partitions()
        begins = consumer.beginning_offsets(parts)
        return {str(tp.partition): int(begins[tp]) for tp in parts}

    def getDefaultReadLimit(self) -> ReadLimit:  # noqa: N802
        """MaxOffsetsPerTrigger as Spark's ReadMaxRows, else everything available."""
        return ReadMaxRows(self.max_rows) if self.max_rows > 0 else ReadAllAvailable()

    def latestOffset(self, start: dict[str, int], limit: ReadLimit) -> dict[str, int]:  # noqa: N802
        """The end of the next batch: everything new, or at most ``limit`` rows spread fairly over partitions."""
        ends = self._end_offsets()
        start = {p: int(start.get(p, 0)) for p in ends}
        if lost := {p: (start[p], ends[p]) for p in ends if ends[p] < start[p]}:
            detail = ", ".join(
                f"partition {p}: checkpoint at offset {a}, topic ends at {b}" for p, (a, b) in lost.items()
            )
            if self.fail_on_data_loss:
                msg = (
                    f"topic {self.topic!r} is behind this query's checkpoint ({detail}): it was recreated or its "
                    "data was lost. Start a new query with a new checkpoint (tone stream --query NEW also gets fresh "
                    "offset bookkeeping in Redis), or set failOnDataLoss=false to continue from the topic's current end"
                )
                raise RuntimeError(msg)
            log.warning("data loss on %s (%s): continuing from the current end", self.topic, detail)
            start |= {p: ends[p] for p in lost}
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
        ranges = [
            KafkaRange(self.topic, int(p), int(start.get(p, 0)), int(e))
            for p, e in sorted(end.items(), key=lambda kv: int(kv[0]))
            if int(e) > int(start.get(p, 0))
        ]
        if self.emit == "ranges" and self.max_tasks > 0:
            return group_ranges(ranges, self.max_tasks)
        return ranges

    def commit(self, end: dict[str, int]) -> None:
        """Spark has processed everything before ``end``; offsets live in the checkpoint, nothing to do."""

    def stop(self) -> None:
        """Close the driver's consumers."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._rd_consumer is not None:
            self._rd_consumer.close()
            self._rd_consumer = None

    # -- worker side ---------------------------------------------------------------------------------------------
    def read(self, partition: InputPartition) -> Iterator[Any]:
        """Yield the range's records as Arrow record batches (far faster than row tuples).

        With confluent-kafka installed the records are fetched and decoded by librdkafka (C); otherwise by
        kafka-python. Either way one consumer per Python worker is reused by its tasks: connecting and fetching
        metadata afresh for every partition range of every micro-batch cost more than reading a small range.
        """
        if isinstance(partition, KafkaRanges):
            for r in partition.ranges:
                yield (r.topic, r.partition, r.start, r.end)
            return
        if not isinstance(partition, KafkaRange):
            msg = f"unexpected partition {partition!r}"
            raise TypeError(msg)
        if self.emit == "ranges":
            yield (partition.topic, partition.partition, partition.start, partition.end)
            return
        yield from self.read_range(partition)

    def read_range(self, partition: KafkaRange) -> Iterator[Any]:
        """The records of one range as Arrow record batches of SCHEMA (what Spark gets from read())."""
        for chunk in self.read_range_chunks(partition):
            yield chunk.to_arrow()

    def read_range_chunks(self, partition: KafkaRange) -> Iterator[RecordChunk]:
        """The records of one range as plain column lists (emit=ranges tasks: no Arrow round trip)."""
        if self.librdkafka:
            records = self._read_confluent(partition)
        else:
            records = self._read_kafka_python(partition)
        pending = RecordChunk(partition.topic, partition.partition)
        for record in records:
            pending.add(*record)
            if len(pending) >= ARROW_BATCH_ROWS:
                yield pending.take()
        if len(pending):
            yield pending.take()

    def _read_confluent(self, partition: KafkaRange) -> Iterator[_Record]:
        from confluent_kafka import Consumer, KafkaError, TopicPartition

        key = "confluent:" + repr(sorted(self.config.items()))
        consumer = _WORKER_CONSUMERS.get(key)
        if consumer is None:
            consumer = _WORKER_CONSUMERS[key] = Consumer(librdkafka_config(self.config))
        try:
            consumer.assign([TopicPartition(partition.topic, partition.partition, partition.start)])
            position, last_progress = partition.start, time.monotonic()
            while position < partition.end:
                # consume() waits until it has num_messages or the timeout passes: never ask for more than is left.
                wanted = min(ARROW_BATCH_ROWS, partition.end - position)
                messages = consumer.consume(num_messages=wanted, timeout=0.5)
                if not messages:
                    _check_stall(partition, position, last_progress)
                    continue
                last_progress = time.monotonic()
                for m in messages:
                    error = m.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001 - librdkafka's own name
                            continue
                        msg = f"reading {partition.topic}[{partition.partition}]: {error}"
                        raise RuntimeError(msg)
                    offset = int(m.offset() or 0)  # always set on a message without an error
                    if offset >= partition.end:
                        break
                    yield offset, m.timestamp()[1], m.key(), m.value()
                    position = offset + 1
        except Exception:
            _WORKER_CONSUMERS.pop(key, None)  # a broken connection must not be reused
            consumer.close()
            raise
        finally:
            if key in _WORKER_CONSUMERS:
                consumer.unassign()

    def _read_kafka_python(self, partition: KafkaRange) -> Iterator[_Record]:
        from kafka import KafkaConsumer, TopicPartition

        tp = TopicPartition(partition.topic, partition.partition)
        key = repr(sorted(self.config.items()))
        consumer = _WORKER_CONSUMERS.get(key)
        if consumer is None:
            consumer = _WORKER_CONSUMERS[key] = KafkaConsumer(
                **self.config, enable_auto_commit=False, group_id=None, max_partition_fetch_bytes=8 * 1024 * 1024
            )
        try:
            consumer.assign([tp])
            consumer.seek(tp, partition.start)
            position, last_progress = partition.start, time.monotonic()
            while position < partition.end:
                records = consumer.poll(timeout_ms=500, max_records=ARROW_BATCH_ROWS).get(tp, [])
                if not records:
                    _check_stall(partition, position, last_progress)
                    continue
                last_progress = time.monotonic()
                for r in records:
                    if r.offset >= partition.end:
                        break
                    yield r.offset, r.timestamp, r.key, r.value
                position = max(position, records[-1].offset + 1)
        except Exception:
            _WORKER_CONSUMERS.pop(key, None)  # a broken connection must not be reused
            consumer.close()
            raise
        finally:
            consumer.assign([])


def librdkafka_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The kafka-python style client config as librdkafka settings, for a consumer that only uses assign()."""
    return librdkafka_names(config) | {
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


def spark_options(config: Mapping[str, Any]) -> dict[str, str]:
    """A kafka-python client config as this source's ``kafka.*`` options (the inverse of :func:`client_config`)."""
    options = {"kafka.bootstrap.servers": ",".join(config["bootstrap_servers"])}
    for spark_name, python_name in _CLIENT_OPTIONS.items():
        if config.get(python_name) is not None:
            options[f"kafka.{spark_name}"] = str(config[python_name])
    return options


def _check_stall(partition: KafkaRange, position: int, last_progress: float) -> None:
    if time.monotonic() - last_progress > READ_STALL_TIMEOUT_S:
        msg = (
            f"reading {partition.topic}[{partition.partition}] stalled at offset {position} "
            f"(expected up to {partition.end})"
        )
        raise TimeoutError(msg)


@dataclass
class RecordChunk:
    """Up to ARROW_BATCH_ROWS records of one partition as column lists; Arrow only where Spark needs it.

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

    def to_arrow(self) -> Any:
        """An Arrow record batch of the source's record schema."""
        import pyarrow as pa

        n = len(self.offsets)
        stamps = pa.array([t * 1000 for t in self.stamps_ms], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
        return pa.RecordBatch.from_arrays(
            [
                pa.array([self.topic] * n, pa.string()),
                pa.array([self.partition] * n, pa.int32()),
                pa.array(self.offsets, pa.int64()),
                stamps,
                pa.array(self.keys, pa.binary()),
                pa.array(self.values, pa.binary()),
            ],
            schema=_record_schema(),
        )

    @classmethod
    def from_arrow(cls, batch: Any) -> RecordChunk:
        """A record batch of the source's rows (the non-fused path) as a chunk; it must not be empty."""
        import pyarrow as pa

        micros = batch.column("timestamp").cast(pa.int64()).to_pylist()
        return cls(
            batch.column("topic")[0].as_py(),
            batch.column("partition")[0].as_py(),
            batch.column("offset").to_pylist(),
            [m // 1000 for m in micros],
            batch.column("key").to_pylist(),
            batch.column("value").to_pylist(),
        )


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
