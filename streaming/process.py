"""The Spark side of one micro-batch task: hand the task's Kafka ranges to the pipeline with this worker's sinks.

The per-record logic lives in :mod:`streaming.pipeline` (Spark-free, unit-tested with in-memory sinks); this module
only finds the task's records (rows of the source, or ranges it reads itself) and the worker's long-lived resources
(settings, scorer, producer, store; see :mod:`streaming.worker`), and turns the stats into Arrow for Spark.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from streaming.pipeline import STATS_SCHEMA, RangeStats, TaskConfig, run_task
from streaming.worker import RESOURCES
from tone.language import DEFAULT_SCORER

if TYPE_CHECKING:
    from tone.aggregates.store import ToneStore
    from tone.kafka.clients import Producer
    from tone.kafka.readers import RecordChunk
    from tone.kafka.transactions import Outputs
    from tone.langid import LanguageDetector
    from tone.scoring.base import Scorer
    from tone.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "STATS_SCHEMA",
    "JobConfig",
    "Range",
    "current_scorer",
    "process_partition",
    "process_ranges",
    "worker_settings",
]


@dataclass(frozen=True)
class JobConfig:
    """What every task needs, shipped to the workers (plain data: picklable)."""

    query: str
    scorer: str  # the default route's spec as the job runs it (a registry version pinned by the refresher)
    settings_env: dict[str, str]
    # Set when the source emits ranges (emit=ranges): the source options, so tasks read their records themselves.
    source_options: dict[str, str] | None = None
    shadow: str = ""  # the shadow candidate's spec ("" for none): see streaming.refresh.ShadowFollower

    def fingerprint(self) -> str:
        """What the worker's settings and clients were built from (the scorer spec aside)."""
        return json.dumps(self.settings_env, sort_keys=True)

    def spec(self, route: str) -> str:
        """The scorer spec a route's spec stands for (``default``: the job's scorer)."""
        return self.scorer if route == DEFAULT_SCORER else route


def worker_settings(config: JobConfig) -> Settings:
    """The job's settings, rebuilt once per worker."""
    from tone.settings import load_settings

    return RESOURCES.get("settings", config.fingerprint(), lambda: load_settings(**config.settings_env))


def _scorer_key(config: JobConfig, route: str) -> tuple[str, str]:
    """A route's scorer as a worker resource: its kind (one per route) and the fingerprint it is built from.

    One kind per route, so a hot reload replaces the route's old model instead of keeping both.
    """
    return f"scorer:{route}", f"{config.spec(route)}|{config.fingerprint()}"


def current_scorer(config: JobConfig, route: str = DEFAULT_SCORER) -> Scorer:
    """A route's scorer for this worker, loaded once and reused across batches (swapped when the spec changes).

    A model that fails to load while an old one is held leaves the old one scoring (see WorkerResources.get); the
    failure is logged once, here, since that fingerprint is never tried again in this worker.
    """
    from tone.scoring.loader import load_scorer

    spec = config.spec(route)

    def load() -> Scorer:
        t0 = time.perf_counter()
        try:
            scorer = load_scorer(spec, worker_settings(config))
        except Exception as exc:
            log.error("worker %d could not load %s (%s); it keeps any model it had", os.getpid(), spec, exc)
            raise
        # Once per Python worker (and model): a first batch that is slow shows here.
        log.info("worker %d loaded %s in %.1f s", os.getpid(), scorer.version, time.perf_counter() - t0)
        return scorer

    kind, fingerprint = _scorer_key(config, route)
    return RESOURCES.get(kind, fingerprint, load, keep_on_failure=True)


def shadow_scorer(config: JobConfig) -> Scorer:
    """The shadow candidate for this worker, loaded once (a failure raises: the pipeline drops the candidate)."""
    from tone.scoring.loader import load_scorer

    return RESOURCES.get(
        "scorer:shadow",
        f"{config.shadow}|{config.fingerprint()}",
        lambda: load_scorer(config.shadow, worker_settings(config)),
    )


def refused_scorer(config: JobConfig, routes: Iterable[str] = (DEFAULT_SCORER,)) -> str:
    """The scorer specs this worker failed to load (it kept the old models), comma-separated, or ""."""
    return ",".join(config.spec(r) for r in routes if RESOURCES.refusal(*_scorer_key(config, r)))


def _detector(config: JobConfig, task: TaskConfig) -> LanguageDetector:
    """The worker's language detector (built once: about 0.1 s), preferring the languages the routes score."""
    from tone.langid import LanguageDetector

    settings = worker_settings(config)
    preferred = sorted(lang for lang, _ in task.routes.table if task.routes.spec_for(lang) and len(lang) <= 3)
    candidates = settings.lang_candidates_list
    fingerprint = json.dumps([candidates, preferred])
    return RESOURCES.get("detector", fingerprint, lambda: LanguageDetector(candidates, preferred))


def _producer(config: JobConfig) -> Producer:
    from tone.kafka.clients import open_producer
    from tone.kafka.config import KafkaConnection, producer_overrides

    def build() -> Producer:
        settings = worker_settings(config)
        return open_producer(KafkaConnection.from_settings(settings), **producer_overrides(settings))

    return RESOURCES.get("producer", config.fingerprint(), build)


def _outputs(config: JobConfig) -> Outputs:
    from tone.kafka.config import KafkaConnection, producer_overrides
    from tone.kafka.transactions import KafkaOutputs

    def build() -> Outputs:
        s = worker_settings(config)
        group = s.kafka_group_prefix + config.query
        conn = KafkaConnection.from_settings(s)
        timeout = s.kafka_transaction_timeout_ms
        return KafkaOutputs(conn, group, config.query, transaction_timeout_ms=timeout, overrides=producer_overrides(s))

    return RESOURCES.get("outputs", config.fingerprint(), build)


def _store(config: JobConfig) -> ToneStore:
    from tone.aggregates.factory import open_store

    return RESOURCES.get("store", config.fingerprint(), lambda: open_store(worker_settings(config)))


def _vader() -> Scorer:
    from tone.scoring.vader import VaderScorer

    return RESOURCES.get("vader", "vader", VaderScorer)


Markers = dict[tuple[str, int], int | None]  # (topic, partition) -> the store's marker, as this task read it


Range = tuple[str, int, int, int]  # topic, partition, first offset, end offset (exclusive)


def _range_sources(config: JobConfig, batches: Iterator[Any], markers: Markers) -> list[Iterator[RecordChunk]]:
    """One iterator of record chunks per Kafka range this task handles, from the rows Spark hands ``mapInArrow``.

    Rows of a Kafka source (ours with emit=records, or Spark's own): one source, possibly of several partitions.
    With emit=ranges the rows name the ranges (possibly several per task, see streaming/kafka_source.py) and this
    task reads their records (see _read_ranges).
    """
    from streaming.kafka_source import from_arrow

    if config.source_options is None:
        return [(chunk for b in batches if b.num_rows for chunk in from_arrow(b))]
    rows = (row for batch in batches for row in batch.to_pylist())
    ranges = [(row["topic"], row["partition"], row["start_offset"], row["end_offset"]) for row in rows]
    return _read_ranges(config, ranges, markers)


def _read_ranges(config: JobConfig, ranges: list[Range], markers: Markers) -> list[Iterator[RecordChunk]]:
    """Read each range's records from just after the store's marker.

    What an earlier attempt counted is not read again (after a crash between the store and Spark's commit,
    retention may even have deleted it since: not a loss). The markers it read go into ``markers``, so the pipeline
    does not read them again.
    """
    from streaming.kafka_source import KafkaRange, KafkaStreamReader

    if config.source_options is None:
        msg = "ranges are read with the source's options (JobConfig.source_options)"
        raise ValueError(msg)
    reader = KafkaStreamReader(config.source_options)
    store = _store(config)
    todo = []
    for topic, partition, start, end in ranges:
        markers[(topic, partition)] = last = store.last_offset(config.query, topic, partition)
        first = start if last is None else max(start, last + 1)
        if first < end:
            todo.append(KafkaRange(topic, partition, first, end))
    return [reader.read_range_chunks(r) for r in todo]


def _run(config: JobConfig, sources: list[Iterator[RecordChunk]], markers: Markers) -> list[RangeStats]:
    """One task's ranges through the pipeline with this worker's resources; one stats row per range."""
    from tone.kafka.clients import DeliveryError

    task = TaskConfig.from_settings(worker_settings(config), config.query)
    try:
        rows = run_task(
            task,
            sources,
            scorer=lambda route: current_scorer(config, route),
            producer=lambda: _producer(config),
            store=lambda: _store(config),
            reference=_vader,
            markers=markers,
            outputs=lambda: _outputs(config),
            detector=lambda: _detector(config, task),
            shadow=(lambda: shadow_scorer(config)) if config.shadow else None,
        )
    except DeliveryError:
        # A producer the broker refused once (a TLS or authentication hiccup) stays refused for its life: the task's
        # retry gets a new one.
        RESOURCES.drop("producer")
        raise
    if rows and (refused := refused_scorer(config, task.routes.specs())):
        rows[0].refused = refused
    RESOURCES.settle()  # after a task that loaded a model or a client: see streaming/worker.py
    return rows


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
    """``mapInArrow`` function: run this task's Kafka range(s) through the pipeline, yield one stats row per range."""
    markers: Markers = {}
    rows = _run(config, _range_sources(config, batches, markers), markers)
    if rows:
        yield _stats_batch(rows)


def process_ranges(config: JobConfig, tasks: Iterator[list[Range]]) -> Iterator[RangeStats]:
    """``mapPartitions`` function of a batch the driver planned (see ToneStream.planned_tasks): the ranges to read.

    Each element is one task's ranges; one stats row per range comes back.
    """
    markers: Markers = {}
    ranges = [r for task in tasks for r in task]
    yield from _run(config, _read_ranges(config, ranges, markers), markers)
