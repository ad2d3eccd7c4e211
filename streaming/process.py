"""Worker-side work of one micro-batch task: parse -> validate -> score -> aggregate -> sinks.

Each Spark task gets the records of one or more Kafka partition offset ranges (the producer keys tweets by user
id, so every user's tweets of a batch are in one range). The task:

1. parses and validates each value with the shared schema; invalid ones go to the dead-letter topic with the
   original bytes as value and the reason in headers;
2. scores the valid ones in one batched call, with the model loaded once per Python worker and reused;
3. writes scored tweets to the scored topic (keyed by user id, with the model version);
4. applies the per-user deltas to the store in one call per range that is idempotent per Kafka offset range: a
   range that was applied before (a batch replayed after a crash) changes nothing.

Topic writes are at-least-once (a replayed batch may send them again); the aggregates are exactly once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from streaming.worker import RESOURCES
from tone.aggregates.deltas import Scored, batch_deltas
from tone.events import Invalid, ScoredTweet, TweetEvent, parse_event

if TYPE_CHECKING:
    from tone.aggregates.store import ToneStore
    from tone.kafka.clients import Headers, Producer
    from tone.kafka.readers import RecordChunk
    from tone.scoring.base import Scorer, ToneResult
    from tone.settings import Settings

LAG_SAMPLE = 2000  # per-record produce->Redis lags returned per range (evenly spaced), for percentiles


@dataclass(frozen=True)
class JobConfig:
    """What every task needs, shipped to the workers (plain data: picklable)."""

    query: str
    scorer: str
    settings_env: dict[str, str]
    # Set when the source emits ranges (emit=ranges): the source options, so tasks read their records themselves.
    source_options: dict[str, str] | None = None

    def fingerprint(self) -> str:
        """What the worker's settings and clients were built from (the scorer spec aside)."""
        return json.dumps(self.settings_env, sort_keys=True)


def worker_settings(config: JobConfig) -> Settings:
    """The job's settings, rebuilt once per worker."""
    from tone.settings import load_settings

    return RESOURCES.get("settings", config.fingerprint(), lambda: load_settings(**config.settings_env))


def current_scorer(config: JobConfig) -> Scorer:
    """The scorer for this worker, loaded once and reused across batches (swapped when the spec changes)."""
    from tone.scoring.loader import load_scorer

    fingerprint = f"{config.scorer}|{config.fingerprint()}"
    return RESOURCES.get("scorer", fingerprint, lambda: load_scorer(config.scorer, worker_settings(config)))


def _producer(config: JobConfig) -> Producer:
    from tone.kafka.clients import worker_producer
    from tone.kafka.config import KafkaConnection

    def build() -> Producer:
        return worker_producer(KafkaConnection.from_settings(worker_settings(config)))

    return RESOURCES.get("producer", config.fingerprint(), build)


def _store(config: JobConfig) -> ToneStore:
    from tone.aggregates.redis_store import open_store

    return RESOURCES.get("store", config.fingerprint(), lambda: open_store(worker_settings(config)))


@dataclass
class RangeStats:
    """What one task did with one Kafka range; one row of the task's output (see STATS_SCHEMA)."""

    topic: str = ""
    partition: int = -1
    start_offset: int = -1
    end_offset: int = -1
    records: int = 0
    valid: int = 0
    invalid: int = 0
    applied: bool = False
    parse_s: float = 0.0
    score_s: float = 0.0
    redis_s: float = 0.0
    kafka_s: float = 0.0
    model_version: str = ""
    max_lag_s: float = 0.0
    lags: str = "[]"


# Spark's DDL for the rows above, derived from the dataclass so the two cannot drift apart. Partition is the only
# 32-bit integer (Spark's Kafka schema has it as int); the other integers are offsets and counts.
_DDL = {str: "string", bool: "boolean", float: "double", int: "long"}
STATS_SCHEMA = ", ".join(
    f"{f.name} {'int' if f.name == 'partition' else _DDL[type(f.default)]}" for f in fields(RangeStats)
)


def _read(config: JobConfig, chunks: Iterator[RecordChunk], stats: RangeStats) -> tuple[list[TweetEvent], list[float]]:
    """Parse and validate a range's records; dead-letter the invalid ones.

    Returns the valid events and their Kafka timestamps (epoch s).
    """
    s = worker_settings(config)
    events: list[TweetEvent] = []
    stamps: list[float] = []
    producer = None  # opened at the first invalid record (a cached lookup costs more than one record's parse)
    for chunk in chunks:
        if not chunk.offsets:
            continue
        if stats.partition < 0:
            stats.topic, stats.partition, stats.start_offset = chunk.topic, chunk.partition, chunk.offsets[0]
        stats.end_offset = chunk.offsets[-1]  # a partition's offsets only grow
        stats.records += len(chunk.offsets)
        for key, value, offset, ts_ms in zip(chunk.keys, chunk.values, chunk.offsets, chunk.stamps_ms, strict=True):
            result = parse_event(value, max_text_chars=s.max_text_chars, max_message_bytes=s.max_message_bytes)
            if isinstance(result, Invalid):
                stats.invalid += 1
                producer = producer or _producer(config)
                headers: Headers = [
                    ("reason", result.reason.encode()),
                    ("detail", result.detail.encode()),
                    ("source", f"{stats.topic}:{stats.partition}:{offset}".encode()),
                ]
                producer.send(s.kafka_topic_dlq, key=key, value=value, headers=headers)
            else:
                events.append(result)
                stamps.append(ts_ms / 1000)
    return events, stamps


def _score(config: JobConfig, events: list[TweetEvent]) -> tuple[list[ToneResult], str, float]:
    """Score every valid event of the task in one call (bigger sets pad less); returns results, version, seconds."""
    t0 = time.perf_counter()
    scorer = current_scorer(config)
    results = scorer.score([e.text for e in events])
    return results, scorer.version, time.perf_counter() - t0


def _sink(
    config: JobConfig, events: list[TweetEvent], results: list[ToneResult], version: str, stats: RangeStats
) -> None:
    """Send one range's scored tweets to the scored topic and apply its deltas to the store (exactly once)."""
    s = worker_settings(config)
    t0 = time.perf_counter()
    producer = _producer(config)
    scored = []
    for event, res in zip(events, results, strict=True):
        created = event.created_at.timestamp()
        scored.append(Scored(event.user_id, event.id, created, res.label, res.probs, res.polarity, event.text, version))
        wire = ScoredTweet(event.id, event.user_id, event.created_at, res.label, res.probs, res.polarity, version)
        producer.send(s.kafka_topic_scored, key=event.user_id.encode(), value=wire.to_json())
    stats.kafka_s += time.perf_counter() - t0

    t0 = time.perf_counter()
    # Users are keyed to Kafka partitions, so one range's deltas hold every tweet of its users in this batch.
    deltas = batch_deltas(scored, s.ewma_half_life_s, s.recent_tweets)
    stats.applied = _store(config).apply_range(
        config.query, stats.topic, stats.partition, stats.start_offset, stats.end_offset, deltas
    )
    stats.redis_s += time.perf_counter() - t0


def _range_sources(config: JobConfig, batches: Iterator[Any]) -> list[Iterator[RecordChunk]]:
    """One iterator of record chunks per Kafka range this task handles.

    Rows of the source itself: one range. With emit=ranges the rows name the ranges (possibly several per task,
    see streaming/kafka_source.py) and this task reads their records.
    """
    from streaming.kafka_source import KafkaRange, KafkaStreamReader, from_arrow

    if config.source_options is None:
        return [(from_arrow(b) for b in batches if b.num_rows)]

    reader = KafkaStreamReader(config.source_options)
    ranges = [
        KafkaRange(row["topic"], row["partition"], row["start_offset"], row["end_offset"])
        for batch in batches
        for row in batch.to_pylist()
    ]
    return [reader.read_range_chunks(r) for r in ranges]


def _stats_batch(rows: list[RangeStats]) -> Any:
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int": pa.int32(),
        "long": pa.int64(),
        "boolean": pa.bool_(),
        "double": pa.float64(),
    }
    schema = pa.schema([(name, types[kind]) for name, kind in (c.split() for c in STATS_SCHEMA.split(", "))])
    return pa.RecordBatch.from_pylist([asdict(r) for r in rows], schema=schema)


def process_partition(config: JobConfig, batches: Iterator[Any]) -> Iterator[Any]:
    """``mapInArrow`` function: consume this task's Kafka range(s), yield one stats row per range.

    Per-task times (parse, score) are reported on the first range's row; the batch report sums them.
    """
    parsed: list[tuple[RangeStats, list[TweetEvent], list[float]]] = []
    t0 = time.perf_counter()
    for source in _range_sources(config, batches):
        stats = RangeStats()
        events, stamps = _read(config, source, stats)
        if stats.records:
            parsed.append((stats, events, stamps))
    if not parsed:
        return
    first = parsed[0][0]
    first.parse_s = time.perf_counter() - t0

    all_events = [e for _, events, _ in parsed for e in events]
    results: list[ToneResult] = []
    version = ""
    if all_events:
        results, version, first.score_s = _score(config, all_events)
    done = 0
    for stats, events, _ in parsed:
        stats.valid = len(events)
        if events:
            stats.model_version = version
            _sink(config, events, results[done : done + len(events)], version, stats)
            done += len(events)
        else:
            # Only invalid records: still mark the range, so the offset bookkeeping stays contiguous.
            stats.applied = _store(config).apply_range(
                config.query, stats.topic, stats.partition, stats.start_offset, stats.end_offset, []
            )
    if all_events or any(stats.invalid for stats, _, _ in parsed):
        t0 = time.perf_counter()
        _producer(config).flush()
        first.kafka_s += time.perf_counter() - t0
    now = time.time()
    for stats, _, stamps in parsed:
        if stamps:
            # Age of the range's oldest valid record when its tweets reached Redis: its worst produce->Redis lag.
            stats.max_lag_s = now - min(stamps)
            step = max(1, len(stamps) // LAG_SAMPLE)
            stats.lags = json.dumps([round(now - t, 4) for t in stamps[::step]])
    yield _stats_batch([stats for stats, _, _ in parsed])
