"""Worker-side work of one micro-batch partition: parse -> validate -> score -> aggregate -> sinks.

Each Spark task gets the records of one Kafka partition's offset range (the source plans one task per Kafka
partition, and the producer keys tweets by user id, so every user's tweets of a batch are in one task). The task:

1. parses and validates each value with the shared schema; invalid ones go to the dead-letter topic with the
   original bytes as value and the reason in headers;
2. scores the valid ones in one batched call, with the model loaded once per Python worker and reused;
3. writes scored tweets to the scored topic (keyed by user id, with the model version);
4. applies the per-user deltas to Redis in one Lua call that is idempotent per Kafka offset range: a range that
   was applied before (a batch replayed after a crash) changes nothing.

Topic writes are at-least-once (a replayed batch may send them again); Redis aggregates are exactly once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tone.aggregate import Scored, batch_deltas
from tone.schema import Invalid, parse_event

if TYPE_CHECKING:
    from streaming.kafka_source import RecordChunk

STATS_SCHEMA = (
    "topic string, partition int, start_offset long, end_offset long, records long, valid long, invalid long, "
    "applied boolean, parse_s double, score_s double, redis_s double, kafka_s double, model_version string, "
    "max_lag_s double, lags string"
)
LAG_SAMPLE = 2000  # per-record produce->Redis lags returned per range (evenly spaced), for percentiles

_worker_cache: dict[Any, Any] = {}


@dataclass(frozen=True)
class JobConfig:
    """What every task needs, shipped to the workers (plain data: picklable)."""

    query: str
    scorer: str
    settings_env: dict[str, str]
    dlq_topic: str
    scored_topic: str
    half_life_s: float
    recent_k: int
    top_min_count: int
    bucket_ttl_s: int
    key_prefix: str = "tone:"
    # Set when the source emits ranges (emit=ranges): the source options, so tasks read their records themselves.
    source_options: dict[str, str] | None = None


def _cached(kind: str, config: JobConfig, build: Callable[[], Any]) -> Any:
    """Per-worker cache of settings and clients, keyed by the job's configuration.

    A Python worker reused by another query (or a test with other topics and keys) must not write with the previous
    query's clients.
    """
    fingerprint = json.dumps({**asdict(config), "scorer": None}, sort_keys=True, default=str)
    key = (kind, fingerprint)
    if key not in _worker_cache:
        _worker_cache[key] = build()
    return _worker_cache[key]


def _settings(config: JobConfig) -> Any:
    from tone.settings import load_settings

    return _cached("settings", config, lambda: load_settings(**config.settings_env))


def current_scorer(config: JobConfig) -> Any:
    """The scorer for this worker, loaded once and reused across batches (swapped when the spec changes)."""
    cached = _worker_cache.get("scorer")
    if cached is not None and cached[0] == config.scorer:
        return cached[1]
    from tone.scorers.loader import load_scorer

    scorer = load_scorer(config.scorer, _settings(config))
    _worker_cache["scorer"] = (config.scorer, scorer)
    return scorer


def _producer(config: JobConfig) -> Any:
    def build() -> Any:
        from streaming import fastkafka

        if fastkafka.available():
            return fastkafka.FastProducer(_settings(config))
        from kafka import KafkaProducer

        from producer.kafka_writer import PRODUCER_DEFAULTS

        return KafkaProducer(**_settings(config).kafka_client_config(), **PRODUCER_DEFAULTS)

    return _cached("producer", config, build)


def _store(config: JobConfig) -> Any:
    def build() -> Any:
        from tone.store import StoreConfig, ToneStore

        s = _settings(config)
        password = s.redis_password.get_secret_value() if s.redis_password else None
        store_config = StoreConfig(
            prefix=config.key_prefix,
            half_life_s=config.half_life_s,
            recent_k=config.recent_k,
            top_min_count=config.top_min_count,
            bucket_ttl_s=config.bucket_ttl_s,
        )
        return ToneStore.from_url(s.redis_url, password, store_config)

    return _cached("store", config, build)


@dataclass
class _Stats:
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


def _read(config: JobConfig, chunks: Iterator[RecordChunk], stats: _Stats) -> tuple[list[Any], list[float], int | None]:
    """Parse and validate a range's records; dead-letter the invalid ones.

    Returns the valid events, their Kafka timestamps (epoch s) and the oldest timestamp (epoch ms).
    """
    s = _settings(config)
    events: list[Any] = []
    stamps: list[float] = []
    oldest_ms: int | None = None
    producer = None  # opened at the first invalid record (a cached lookup costs more than one record's parse)
    for chunk in chunks:
        if not chunk.offsets:
            continue
        if stats.partition < 0:
            stats.topic, stats.partition, stats.start_offset = chunk.topic, chunk.partition, chunk.offsets[0]
        stats.end_offset = max(stats.end_offset, chunk.offsets[-1])  # a partition's offsets only grow
        oldest_ms = chunk.stamps_ms[0] if oldest_ms is None else min(oldest_ms, chunk.stamps_ms[0])
        stats.records += len(chunk.offsets)
        for key, value, offset, ts_ms in zip(chunk.keys, chunk.values, chunk.offsets, chunk.stamps_ms, strict=True):
            result = parse_event(value, max_text_chars=s.max_text_chars, max_message_bytes=s.max_message_bytes)
            if isinstance(result, Invalid):
                stats.invalid += 1
                producer = producer or _producer(config)
                headers = [
                    ("reason", result.reason.encode()),
                    ("detail", result.detail.encode()),
                    ("source", f"{stats.topic}:{stats.partition}:{offset}".encode()),
                ]
                producer.send(config.dlq_topic, key=key, value=value, headers=headers)
            else:
                events.append(result)
                stamps.append(ts_ms / 1000)
    return events, stamps, oldest_ms


def _score(config: JobConfig, events: list[Any]) -> tuple[list[Any], str, float]:
    """Score every valid event of the task in one call (bigger sets pad less); returns results, version, seconds."""
    t0 = time.perf_counter()
    scorer = current_scorer(config)
    results = scorer.score([e.text for e in events])
    return results, scorer.version, time.perf_counter() - t0


def _sink(config: JobConfig, events: list[Any], results: list[Any], version: str, stats: _Stats) -> None:
    """Send one range's scored tweets to the scored topic and apply its deltas to Redis (exactly once)."""
    t0 = time.perf_counter()
    producer = _producer(config)
    scored = []
    for event, res in zip(events, results, strict=True):
        scored.append(
            Scored(
                event.user_id,
                event.id,
                event.created_at.timestamp(),
                res.label,
                res.probs,
                res.polarity,
                event.text,
                version,
            )
        )
        producer.send(
            config.scored_topic,
            key=event.user_id.encode(),
            value=json.dumps(
                {
                    "id": event.id,
                    "user_id": event.user_id,
                    "created_at": event.created_at.isoformat(),
                    "label": res.label,
                    "probs": res.probs,
                    "polarity": res.polarity,
                    "model_version": version,
                }
            ).encode(),
        )
    stats.kafka_s += time.perf_counter() - t0

    t0 = time.perf_counter()
    # Users are keyed to Kafka partitions, so one range's deltas hold every tweet of its users in this batch.
    deltas = batch_deltas(scored, config.half_life_s, config.recent_k)
    stats.applied = _store(config).apply_range(
        config.query, stats.topic, stats.partition, stats.start_offset, stats.end_offset, deltas
    )
    stats.redis_s += time.perf_counter() - t0


def _range_sources(config: JobConfig, batches: Iterator[Any]) -> list[Iterator[RecordChunk]]:
    """One iterator of record chunks per Kafka range this task handles.

    Rows of the source itself: one range. With emit=ranges the rows name the ranges (possibly several per task,
    see streaming/kafka_source.py) and this task reads their records.
    """
    from streaming.kafka_source import KafkaRange, KafkaStreamReader, RecordChunk

    if config.source_options is None:
        return [(RecordChunk.from_arrow(b) for b in batches if b.num_rows)]

    reader = _cached("reader", config, lambda: KafkaStreamReader(config.source_options or {}))
    ranges = [
        KafkaRange(row["topic"], row["partition"], row["start_offset"], row["end_offset"])
        for batch in batches
        for row in batch.to_pylist()
    ]
    return [reader.read_range_chunks(r) for r in ranges]


def _stats_batch(rows: list[_Stats]) -> Any:
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int": pa.int32(),
        "long": pa.int64(),
        "boolean": pa.bool_(),
        "double": pa.float64(),
    }
    # The Arrow types must match STATS_SCHEMA exactly (int is 32-bit there; Python ints default to 64).
    schema = pa.schema([(name, types[kind]) for name, kind in (c.split() for c in STATS_SCHEMA.split(", "))])
    return pa.RecordBatch.from_pylist([asdict(r) for r in rows], schema=schema)


def process_partition(config: JobConfig, batches: Iterator[Any]) -> Iterator[Any]:
    """``mapInArrow`` function: consume this task's Kafka range(s), yield one stats row per range.

    Per-task times (parse, score) are reported on the first range's row; the batch report sums them.
    """
    parsed: list[tuple[_Stats, list[Any], list[float], int | None]] = []
    t0 = time.perf_counter()
    for source in _range_sources(config, batches):
        stats = _Stats()
        events, stamps, oldest_ms = _read(config, source, stats)
        if stats.records:
            parsed.append((stats, events, stamps, oldest_ms))
    if not parsed:
        return
    first = parsed[0][0]
    first.parse_s = time.perf_counter() - t0

    all_events = [e for _, events, _, _ in parsed for e in events]
    results: list[Any] = []
    version = ""
    if all_events:
        results, version, first.score_s = _score(config, all_events)
    done = 0
    for stats, events, _, _ in parsed:
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
    if all_events or any(stats.invalid for stats, _, _, _ in parsed):
        t0 = time.perf_counter()
        _producer(config).flush()
        first.kafka_s += time.perf_counter() - t0
    now = time.time()
    for stats, _, stamps, oldest_ms in parsed:
        if oldest_ms is not None:
            # Age of the range's oldest record when its tweets reached Redis: its worst produce->Redis lag.
            stats.max_lag_s = now - oldest_ms / 1000
            step = max(1, len(stamps) // LAG_SAMPLE)
            stats.lags = json.dumps([round(now - t, 4) for t in stamps[::step]])
    yield _stats_batch([stats for stats, _, _, _ in parsed])
