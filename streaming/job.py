"""The Spark Structured Streaming job: Kafka -> (parse, validate, score, aggregate, sinks per partition).

``foreachBatch`` hands each micro-batch's Kafka ranges to :func:`streaming.process.process_partition` through
``mapInArrow`` (one task per Kafka partition range, no shuffle), and collects one stats row per task for progress
reporting and the replay benchmark. :meth:`ToneStream.before_batch` is the one place between micro-batches where
the model refresh runs (scorer ``registry``): it may change ``self.config.scorer``; tasks load the new model on their
next batch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from streaming.kafka_source import SOURCE_NAME, KafkaRange, group_ranges, plan_ranges
from streaming.pipeline import RangeStats
from streaming.process import STATS_SCHEMA, JobConfig, Range, process_partition, process_ranges
from streaming.refresh import ModelRefresher, ShadowFollower
from tone.errors import ConfigError, DataLossError
from tone.kafka.config import KafkaConnection
from tone.language import DEFAULT_SCORER, Routes
from tone.retry import backoff
from tone.settings import Settings

log = logging.getLogger(__name__)


REPORTS_KEPT = 100
REPORT_LAGS = 2000  # produce->Redis lags a report keeps (an evenly spaced sample of its tasks')
LOCAL_JVM_OPTIONS = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:CICompilerCount=1"

# Spark writes two checkpoint files a micro-batch: the offset log before it runs, the commit log after. Its default
# manager goes through Hadoop's FileContext, which, without Hadoop's native library (pip's pyspark has none), forks
# a `readlink` for each path it resolves, eight a file (strace; the cost: docs/benchmarks.md, "Figures behind code").
# The FileSystem manager resolves nothing; what Spark needs of it is an atomic rename, and on a local disk that is
# rename(2). The job's checkpoint is a local path (a Path), so it uses that manager unless the session names one.
CHECKPOINT_MANAGER_KEY = "spark.sql.streaming.checkpointFileManagerClass"
LOCAL_CHECKPOINT_MANAGER = "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager"
# That manager still creates each file and its .crc through Hadoop's local file system, which sets their mode by
# forking `chmod`: two child processes a file, four a batch (the cost: docs/benchmarks.md). This one
# (make setup fetches it: tone.jars.local_filesystem) is Hadoop's LocalFileSystem with java.nio for modes and file
# status: the same files and .crc, no child process. Only the driver writes checkpoints, so only its classpath gets
# it (build_spark), and only the session's Hadoop configuration names it (use_local_checkpoint_manager).
LOCAL_FS_CLASS = "com.globalmentor.apache.hadoop.fs.BareLocalFileSystem"


def kafka_connector_config(settings: Settings) -> dict[str, str]:
    """Spark configuration that puts Spark's Kafka connector on the classpath (for ``--source native``).

    The jars `make setup` fetched (``spark.jars``); without them, ``spark.jars.packages`` with the connector's
    coordinate, which Spark resolves from Maven Central at start (needs access to it).
    """
    from tone.errors import ToneError
    from tone.jars import cached_jars, spark_kafka_connector, spark_kafka_package

    try:
        return {"spark.jars": ",".join(str(p) for p in cached_jars(settings.jars_dir, spark_kafka_connector()))}
    except ToneError as exc:
        log.warning("%s; asking Spark to resolve %s at start instead", exc, spark_kafka_package())
        return {"spark.jars.packages": spark_kafka_package()}


def local_fs_classpath(jars_dir: Path) -> str:
    """The driver classpath entry for LOCAL_FS_CLASS when `make setup` fetched it; "" otherwise (Hadoop's own)."""
    from tone.errors import ToneError
    from tone.jars import cached_jars, local_filesystem

    try:
        return os.pathsep.join(str(p) for p in cached_jars(jars_dir, local_filesystem()))
    except ToneError as exc:
        log.info("%s; checkpoint writes fork chmod (Hadoop's local file system)", exc)
        return ""


def build_spark(  # noqa: PLR0913 - Spark's knobs this project sets
    master: str = "local[*]",
    app_name: str = "tweet-tone",
    extra: dict[str, str] | None = None,
    ui_port: int = 0,
    driver_host: str = "127.0.0.1",
    bind_address: str = "127.0.0.1",
    jars_dir: Path | None = None,
) -> Any:
    """A SparkSession set up for this job (Python workers on this interpreter, Arrow, loopback driver by default).

    ``extra``: more Spark configuration, e.g. :func:`kafka_connector_config` for Spark's own Kafka source.
    ``ui_port``: the Spark UI's port (Spark takes the next free one if it is busy); 0 turns the UI off.
    ``driver_host`` / ``bind_address``: where executors reach the driver, and where it listens (a remote cluster).
    ``jars_dir``: the jar cache (``Settings.jars_dir``); its LOCAL_FS_CLASS goes on the driver's classpath.
    """
    extra = dict(extra or {})
    if jars_dir is not None and (classpath := local_fs_classpath(jars_dir)):
        # The launch classpath, not spark.jars: Hadoop loads a file system class with the JVM's own class loader.
        own = extra.get("spark.driver.extraClassPath")
        extra["spark.driver.extraClassPath"] = os.pathsep.join(filter(None, (own, classpath)))
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers need this venv's pyarrow and models
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from streaming.kafka_source import KafkaDataSource

    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.driver.bindAddress", bind_address)
        .config("spark.driver.host", driver_host)
        .config("spark.ui.enabled", "true" if ui_port else "false")
        .config("spark.ui.port", str(ui_port or 4040))
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.python.worker.reuse", "true")  # keeps each worker's model loaded across batches
        # Over TCP loopback each hand-over between Spark and a Python worker waited for a delayed ACK
        # (docs/benchmarks.md, "Figures behind code"). Executors' Python workers always run beside them, so this
        # holds on a cluster too.
        .config("spark.python.unix.domain.socket.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "4096")
        # A stream runs for weeks: the driver's status store keeps 1,000 jobs, stages and SQL executions by default,
        # one or two more per micro-batch, and the JVM grew each batch until then (tone bench soak). Keep fewer.
        .config("spark.ui.retainedJobs", "100")
        .config("spark.ui.retainedStages", "100")
        .config("spark.ui.retainedTasks", "10000")
        .config("spark.sql.ui.retainedExecutions", "100")
    )
    if master.startswith("local"):
        # In local mode the driver JVM shares the machine's few cores with the Python workers, the broker and the
        # producer. Measured on 2 cores: the JVM used as much CPU as all Python work, mostly JIT compiler and
        # parallel GC threads; the serial GC with C1 only halved it, and the latency and the rate gained
        # (docs/benchmarks.md, "Figures behind code").
        builder = builder.config("spark.driver.extraJavaOptions", LOCAL_JVM_OPTIONS)
    for key, value in extra.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.dataSource.register(KafkaDataSource)
    return spark


def check_languages(settings: Settings, scorer: str) -> Routes:
    """The routes, checked before anything starts (ConfigError saying what to do otherwise).

    Each model reads the languages routed to it, the detector knows its candidate languages, and a route to the
    registry goes through ``default`` (the one that hot-reloads). A model that does not declare its languages is
    logged.
    """
    from tone.langid import LanguageDetector
    from tone.scoring.loader import check_routes

    routes = Routes.parse(settings.routes)
    if "registry" in routes.specs():
        msg = (
            "TONE_ROUTES names registry: route the language to `default` and set TONE_SCORER=registry (the default "
            "route is the one that follows the approved model), or pin a version (registry:VERSION)"
        )
        raise ConfigError(msg)
    for warning in check_routes(routes, settings, scorer):
        log.warning("%s", warning)
    LanguageDetector(settings.lang_candidates_list)  # an unknown candidate is a ConfigError here, not in a task
    return routes


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as field -> string, to rebuild the same settings on the workers."""
    out = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        secret = getattr(value, "get_secret_value", None)
        out[name] = secret() if secret else str(value)
    return out


@dataclass
class BatchReport:
    """What one micro-batch did (summed over its tasks)."""

    batch_id: int
    records: int = 0
    valid: int = 0
    invalid: int = 0
    applied_ranges: int = 0
    skipped_ranges: int = 0
    counted: int = 0  # valid records counted in the store
    already: int = 0  # records counted before (retried task, overlapping range, a new checkpoint resuming)
    duplicates: int = 0  # tweets left out: their id was counted within TONE_DEDUPE_HORIZON_S
    deletes: int = 0  # deletions that took a tweet back out
    deletes_unmatched: int = 0  # deletions of a tweet not kept (older than the horizon, or never counted)
    forgets: int = 0  # erasures carried out
    forgotten: int = 0  # tweets left out: their user was erased
    lost: int = 0  # offsets deleted before they were read (failOnDataLoss=false)
    unscored: int = 0  # valid tweets no route scored (counted by language only)
    lang_ignored: int = 0  # valid tweets whose declared lang is not a language tag (detected instead)
    languages: Counter[str] = field(default_factory=Counter)  # valid tweets by language
    refused: set[str] = field(default_factory=set)  # model specs some worker failed to load (kept its old one)
    parse_s: float = 0.0
    lang_s: float = 0.0
    score_s: float = 0.0
    redis_s: float = 0.0
    kafka_s: float = 0.0
    max_lag_s: float = 0.0
    model_versions: set[str] = field(default_factory=set)
    ranges: list[tuple[int, int, int, int, bool]] = field(default_factory=list)  # partition, start, end, n, applied
    lags: list[float] = field(default_factory=list)  # sampled per-record produce->Redis seconds
    started: float = 0.0  # wall clock (epoch s) when the batch reached foreachBatch
    finished: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)  # dead letters by reason
    labels: Counter[str] = field(default_factory=Counter)  # scored tweets by label
    sampled: int = 0  # tweets VADER scored too (drift)
    disagreed: int = 0
    shadowed: int = 0  # tweets the shadow candidate scored too (its evidence)
    shadow_s: float = 0.0
    shadow_models: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, batch_id: int, rows: Sequence[RangeStats], started: float, finished: float) -> BatchReport:
        """The batch's tasks' rows summed; the produce->Redis lags kept as a sample of at most REPORT_LAGS."""
        report = cls(batch_id, started=started, finished=finished)
        report.ranges = [(r.partition, r.start_offset, r.end_offset, r.records, r.applied) for r in rows]
        for r in rows:
            report.records += r.records
            report.valid += r.valid
            report.invalid += r.invalid
            report.applied_ranges += int(r.applied)
            report.skipped_ranges += int(not r.applied)
            report.counted += r.counted
            report.already += r.already
            report.duplicates += r.duplicates
            report.deletes += r.deletes
            report.deletes_unmatched += r.deletes_unmatched
            report.forgets += r.forgets
            report.forgotten += r.forgotten
            report.lost += r.lost
            report.unscored += r.unscored
            report.lang_ignored += r.lang_ignored
            report.parse_s += r.parse_s
            report.lang_s += r.lang_s
            report.score_s += r.score_s
            report.redis_s += r.redis_s
            report.kafka_s += r.kafka_s
            report.max_lag_s = max(report.max_lag_s, r.max_lag_s)
            report.model_versions.update(v for v in r.model_version.split(",") if v)
            report.refused.update(v for v in r.refused.split(",") if v)
            report.languages.update(json.loads(r.langs))
            report.lags.extend(json.loads(r.lags))
            report.reasons.update(json.loads(r.reasons))
            report.labels.update(json.loads(r.labels))
            report.sampled += r.sampled
            report.disagreed += r.disagreed
            report.shadowed += r.shadowed
            report.shadow_s += r.shadow_s
            if r.shadow_model:
                report.shadow_models.add(r.shadow_model)
        # Bounded: the driver keeps REPORTS_KEPT reports, and a batch of many ranges brought up to LAG_SAMPLE each.
        report.lags = report.lags[:: -(-len(report.lags) // REPORT_LAGS)] if report.lags else []
        return report


class ToneStream:
    """Builds and runs the streaming query."""

    def __init__(
        self,
        settings: Settings,
        *,
        scorer: str | None = None,
        checkpoint: Path,
        query_name: str = "tone",
        trigger_seconds: float = 2.0,
        max_per_trigger: int = 0,
        starting_offsets: str = "earliest",
        on_batch: Callable[[BatchReport], None] | None = None,
        fused_read: bool = True,
        max_tasks: int | None = None,
        source: str | None = None,
    ) -> None:
        """Describe the query; nothing starts until :meth:`start`.

        ``source``: ``python`` (this project's Kafka source, format ``tone_kafka``) or ``native`` (Spark's own
        ``format("kafka")``; the session needs the connector, see :func:`kafka_connector_config`); default: the
        ``kafka_source`` setting. Both feed the same pipeline, and both keep the store exactly once: the ranges come
        from the rows' topic, partition and offset.

        ``fused_read`` (python source only): the source emits offset ranges and each task reads its range's records
        itself (see streaming/kafka_source.py); False moves the records through Spark as the source's rows.
        ``max_tasks`` (fused only): tasks per micro-batch, None for one per core (Spark's default parallelism), 0 for
        one per Kafka partition.
        """
        self.source = source or settings.kafka_source
        if self.source not in ("python", "native"):
            msg = f"the Kafka source must be python or native, got {self.source!r}"
            raise ConfigError(msg)
        fused_read = fused_read and self.source == "python"  # Spark's source hands the tasks their records
        self.max_tasks = max_tasks
        self.settings = settings
        self.checkpoint = checkpoint
        self.trigger_seconds = trigger_seconds
        self.max_per_trigger = max_per_trigger
        self.starting_offsets = starting_offsets
        self.on_batch = on_batch
        # The driver runs for weeks: it keeps running totals and the last REPORTS_KEPT reports, nothing per batch.
        self.reports: deque[BatchReport] = deque(maxlen=REPORTS_KEPT)
        self.batches = 0
        self.totals: Counter[str] = Counter()
        self.restarts = 0  # query restarts so far (self-healing, see run)
        self.planned_batches = 0  # batches whose tasks the driver planned (see planned_tasks)
        self.monitor: Any = None  # streaming.monitor.StreamMonitor when metrics, lag and health are published
        self.behind: str | None = None  # set by the monitor when the topic went back behind the store: stop
        worker_env = settings_env(settings)
        if not settings.torch_threads:
            # Spark runs one task per core; a torch pool per task on top would oversubscribe the cores.
            worker_env["torch_threads"] = "1"
        self.config = JobConfig(
            query=query_name,
            scorer=scorer or settings.scorer,
            settings_env=worker_env,
            source_options=self.source_options() | {"emit": "records"} if fused_read else None,
        )
        self.routes = check_languages(settings, self.config.scorer)
        self.refresher: ModelRefresher | None = None
        follows = self.config.scorer == "registry"
        if follows:
            self.refresher = ModelRefresher(settings, routed=self.routes.languages_of(DEFAULT_SCORER))
            self.config = replace(self.config, scorer=self.refresher.initial())
        self.shadow = ShadowFollower(settings, follows_registry=follows)
        self.config = replace(self.config, shadow=self.shadow.initial(self.config.scorer))
        self.shadow_dropped = ""  # why the last candidate was dropped, for the health record

    def before_batch(self, batch_id: int) -> None:
        """Between micro-batches: follow the registry's approved and shadow models, see streaming/refresh."""
        if self.refresher is not None:
            spec = self.refresher.check(self.config.scorer)
            if spec is not None:
                log.info("batch %d onwards scores with %s", batch_id, spec)
                self.config = replace(self.config, scorer=spec)
        if self.config.shadow == self.config.scorer:
            self.config = replace(self.config, shadow="")  # the candidate went live
        shadow = self.shadow.check(self.config.shadow, self.config.scorer)
        if shadow is not None:
            log.info("batch %d onwards shadows %s", batch_id, shadow or "nothing")
            self.config = replace(self.config, shadow=shadow)

    def after_batch(self, rows: Sequence[RangeStats]) -> None:
        """A shadow candidate a task could not use is dropped (live scoring went on without it)."""
        errors = [r.shadow_error for r in rows if r.shadow_error]
        if errors and self.config.shadow:
            self.shadow_dropped = f"{self.config.shadow}: {errors[0]}"
            self.shadow.drop(self.config.shadow, errors[0])
            self.config = replace(self.config, shadow="")

    def _foreach_batch(self, df: Any, batch_id: int) -> None:
        started = time.time()
        self.before_batch(batch_id)
        tasks = self.planned_tasks(batch_id)
        if tasks is None:
            rows = df.mapInArrow(partial(process_partition, self.config), STATS_SCHEMA).collect()
        elif tasks:
            # The driver knows the batch's ranges: one plain Python job over them, instead of a SQL job whose
            # source rows (the ranges) take a Python worker of their own on the way (docs/benchmarks.md).
            job = df.sparkSession.sparkContext.parallelize(tasks, len(tasks))
            rows = job.mapPartitions(partial(process_ranges, self.config)).collect()
        else:
            rows = []  # offsets that moved back (failOnDataLoss=false): nothing to read
        self.after_batch(rows)
        report = BatchReport.of(batch_id, rows, started, time.time())
        self.reports.append(report)
        self.batches += 1
        self.planned_batches += tasks is not None
        self.totals.update(
            records=report.records,
            invalid=report.invalid,
            counted=report.counted,
            already=report.already,
            duplicates=report.duplicates,
            deletes=report.deletes,
            deletes_unmatched=report.deletes_unmatched,
            forgets=report.forgets,
            forgotten=report.forgotten,
            lost=report.lost,
            unscored=report.unscored,
        )
        if self.monitor is not None:
            self.monitor.after_batch(self, report)
            if self.behind is not None:
                raise DataLossError(self.behind)  # restarting cannot help: see behind_message
        log.debug(
            "batch %d: %d records (%d invalid), models %s",
            batch_id,
            report.records,
            report.invalid,
            sorted(report.model_versions),
        )
        if self.on_batch is not None:
            self.on_batch(report)

    def planned_tasks(self, batch_id: int) -> list[list[Range]] | None:
        """The batch's tasks, each a list of Kafka ranges, when the driver can plan them; None otherwise.

        With this project's source and tasks that read their ranges (fused_read), the ranges are the ones the source
        planned: from the end offsets Spark logged for the previous batch to those of this one (batch_ranges), grouped
        the way the source groups them (maxTasks). None (the batch then runs over the source's rows, which name the
        same ranges): another source, or a batch the offset log cannot place.
        """
        if self.config.source_options is None or self.max_tasks is None:  # max_tasks: resolved when the query starts
            return None
        ranges = batch_ranges(self.checkpoint, batch_id, self.settings.kafka_topic_tweets)
        if ranges is None:
            return None
        groups = group_ranges(ranges, self.max_tasks)
        return [[(r.topic, r.partition, r.start, r.end) for r in g.ranges] for g in groups]

    def source_options(self) -> dict[str, str]:
        """Options of the Kafka source: the same for ours and Spark's (the fused workers read with them too)."""
        s = self.settings
        options = KafkaConnection.from_settings(s).spark_options() | {
            "subscribe": s.kafka_topic_tweets,
            "startingOffsets": self.starting_offsets,
            "failOnDataLoss": str(s.fail_on_data_loss).lower(),
            # Spark's consumer reads uncommitted records by default: aborted transactions would count.
            "kafka.isolation.level": s.kafka_isolation_level,
        }
        if self.max_per_trigger:
            options["maxOffsetsPerTrigger"] = str(self.max_per_trigger)
        return options

    def start(self, spark: Any) -> Any:
        """Start the query; returns Spark's StreamingQuery."""
        fmt = "kafka" if self.source == "native" else SOURCE_NAME
        options = self.source_options()
        from tone.aggregates.factory import open_store

        open_store(self.settings).check_replicas()  # before anything is written (TONE_REDIS_WAIT_REPLICAS)
        resume = resume_offsets(self.settings, self.config.query, self.checkpoint, self.starting_offsets)
        if resume is not None:
            options["startingOffsets"] = resume
        use_local_checkpoint_manager(spark, str(self.checkpoint))
        reader = spark.readStream.format(fmt).options(**options)
        if self.config.source_options is not None:
            # One task per core: each scores its share of the batch in one call, and the batch runs in one wave.
            if self.max_tasks is None:
                self.max_tasks = int(spark.sparkContext.defaultParallelism)
            reader = reader.option("emit", "ranges").option("maxTasks", str(self.max_tasks))
        writer = (
            reader.load()
            .writeStream.foreachBatch(self._foreach_batch)
            .option("checkpointLocation", str(self.checkpoint))
            .queryName(self.config.query)
            .trigger(processingTime=f"{self.trigger_seconds} seconds")
        )
        return writer.start()

    @property
    def records(self) -> int:
        """Records handled so far, over every batch."""
        return self.totals["records"]

    def run(
        self,
        spark: Any,
        until_idle: float | None = None,
        *,
        max_restarts: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Run the query until it ends, or (``until_idle``) no record came for that many seconds.

        Self-healing: a query that fails (Redis or the broker away longer than the sinks retry, a worker killed)
        is restarted from its checkpoint after a capped exponential backoff with jitter (0.5-1, 1-2, 2-4 ... 15-30 s:
        :func:`tone.retry.backoff`), with one log line
        per restart. The checkpoint and the store's offset bookkeeping keep the counts exactly once across restarts.
        After ``max_restarts`` failures in a row with no batch completed in between, the last error is raised.
        """
        max_restarts = self.settings.max_restarts if max_restarts is None else max_restarts
        delay = backoff(1.0, 30.0)
        failures = 0
        while True:
            batches_before = self.batches
            query = None
            try:
                # Inside the try: a start that fails (Redis away while resuming a query without checkpoint offsets)
                # is retried like any other failure.
                query = self.start(spark)
                self._watch(query, until_idle)
                return
            except Exception as exc:  # noqa: BLE001 - any failure of the query (StreamingQueryException, Py4J)
                failures = 1 if self.batches > batches_before else failures + 1
                if isinstance(exc, ConfigError | DataLossError):
                    raise  # found before the query started (settings, a recreated topic): a restart finds it again
                if is_data_loss(exc):
                    # Restarting cannot bring deleted offsets back: say what was lost and what to do, once.
                    raise DataLossError(_first_line(exc).split(": ", 1)[-1]) from None
                if failures > max_restarts:
                    log.error("stream query failed %d times in a row; giving up: %s", failures, _first_line(exc))
                    raise
                wait = delay(failures)
                self.restarts += 1
                log.error(
                    "stream query failed: %s; restarting it from its checkpoint in %.0f s (restart %d, %d in a row, "
                    "at most %d)",
                    _first_line(exc),
                    wait,
                    self.restarts,
                    failures,
                    max_restarts,
                )
                sleep(wait)
            finally:
                if query is not None:
                    with contextlib.suppress(Exception):
                        query.stop()

    def _watch(self, query: Any, until_idle: float | None) -> None:
        if until_idle is None:
            query.awaitTermination()
            if query.exception() is not None:
                raise RuntimeError(str(query.exception()))
            return
        last_seen, seen = time.monotonic(), -1
        while query.isActive:
            query.processAllAvailable()
            if self.records != seen:
                seen, last_seen = self.records, time.monotonic()
            elif time.monotonic() - last_seen > until_idle:
                return
            time.sleep(0.5)
        if query.exception() is not None:
            raise RuntimeError(str(query.exception()))


# Spark's own Kafka source reports data loss with this error class and text (KafkaSourceProvider / KafkaExceptions).
_SPARK_DATA_LOSS = ("KAFKA_DATA_LOSS", "Some data may have been lost because they are not available in Kafka")


def is_data_loss(exc: BaseException) -> bool:
    """Whether a query failed because offsets it had to read are gone (ours: DataLossError; or Spark's source)."""
    text = str(exc)
    return DataLossError.__name__ in text or any(marker in text for marker in _SPARK_DATA_LOSS)


def use_local_checkpoint_manager(spark: Any, location: str) -> None:
    """Write a local checkpoint through Hadoop's FileSystem API (LOCAL_CHECKPOINT_MANAGER), and LOCAL_FS_CLASS if any.

    Unless the session names a manager, and only where the driver's Spark has that class (a spark-submit driver may
    run another Spark). A checkpoint on another file system (``hdfs:``, ``s3a:``) keeps Spark's choice: a rename
    there need not be atomic.
    """
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]+):", location)
    if spark.conf.get(CHECKPOINT_MANAGER_KEY, None) or (scheme and scheme.group(1).lower() != "file"):
        return
    if not _driver_has(spark, LOCAL_CHECKPOINT_MANAGER):
        log.info("this Spark has no %s; checkpoints keep Spark's default manager", LOCAL_CHECKPOINT_MANAGER)
        return
    spark.conf.set(CHECKPOINT_MANAGER_KEY, LOCAL_CHECKPOINT_MANAGER)
    if spark.conf.get("fs.file.impl", None) is None and _driver_has(spark, LOCAL_FS_CLASS):
        # In the session's conf, which Spark copies into the Hadoop configuration of the checkpoint logs (the tasks
        # read Kafka, not files: no executor needs the class), with Hadoop's cache of file systems off for it: that
        # cache is keyed by scheme and holds the file system Spark made at start.
        spark.conf.set("fs.file.impl", LOCAL_FS_CLASS)
        spark.conf.set("fs.file.impl.disable.cache", "true")


def _driver_has(spark: Any, name: str) -> bool:
    try:
        spark.sparkContext._jvm.java.lang.Class.forName(name)
    except Exception:  # noqa: BLE001 - py4j raises its own error for a missing class
        return False
    return True


def logged_offsets(checkpoint: Path, batch_id: int) -> dict[str, int] | None:
    """The end offsets Spark logged for micro-batch ``batch_id`` of a query with one source; None if it cannot say.

    Spark writes them to ``<checkpoint>/offsets/<batch id>`` before it runs the batch, and runs the batch again from
    the same entries after a crash (its write-ahead log; format v1: the version, the batch's metadata, then a line
    per source, here this project's source's ``{"<partition>": next offset}``).
    """
    try:
        lines = (checkpoint / "offsets" / str(batch_id)).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    if len(lines) != 3 or lines[0] != "v1":  # noqa: PLR2004 - version, metadata, one source
        return None
    try:
        offsets = json.loads(lines[2])
    except ValueError:
        return None
    if not isinstance(offsets, dict):
        return None
    if not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets.values()):
        return None
    return offsets


def batch_ranges(checkpoint: Path, batch_id: int, topic: str) -> list[KafkaRange] | None:
    """Micro-batch ``batch_id``'s Kafka ranges as Spark planned them: from the previous batch's end to its own.

    Spark plans a batch from the previous batch's logged end offsets to its own, and hands the source exactly those
    (KafkaStreamReader.partitions); so does this. None when the log cannot say: the query's first batch starts at
    the source's initial offsets, which Spark does not log, and an entry may be purged or in another format.
    """
    if batch_id < 1:
        return None
    start, end = logged_offsets(checkpoint, batch_id - 1), logged_offsets(checkpoint, batch_id)
    if start is None or end is None:
        return None
    return plan_ranges(topic, start, end)


def checkpoint_has_offsets(checkpoint: Path) -> bool:
    """Whether Spark has planned a batch in this checkpoint (its offset log has an entry)."""
    offsets = checkpoint / "offsets"
    return offsets.is_dir() and any(p.name.isdigit() for p in offsets.iterdir())


def resume_offsets(settings: Settings, query: str, checkpoint: Path, starting: str) -> str | None:
    """Spark's JSON ``startingOffsets`` after what the store has counted, for a query without a checkpoint.

    The checkpoint says where to read next, the store what was counted; a lost (or new) checkpoint of a query that
    has counted before resumes after the store's markers, per partition, instead of from ``startingOffsets``. A
    partition the store never counted starts at ``starting`` (earliest or latest). None: nothing to resume
    (a checkpoint with offsets, or a query the store has never seen).

    First, with or without a checkpoint: a topic whose end is below what the store counted was recreated, and the
    query stops with what to do (DataLossError), whatever TONE_FAIL_ON_DATA_LOSS says (see behind_message).
    """
    from tone.aggregates.factory import open_store
    from tone.kafka.readers import behind_message, offsets_behind, open_reader

    topic = settings.kafka_topic_tweets
    store = open_store(settings)
    reader = open_reader(KafkaConnection.from_settings(settings))
    try:
        partitions = reader.partitions(topic)
        ends = reader.end_offsets(topic, partitions)
    finally:
        reader.close()
    markers = {p: store.last_offset(query, topic, p) for p in partitions}
    if behind := offsets_behind(ends, markers):
        detail = ", ".join(
            f"partition {p}: counted up to offset {m}, topic ends at {e}" for p, (m, e) in behind.items()
        )
        raise DataLossError(behind_message(topic, detail))
    if checkpoint_has_offsets(checkpoint) or all(m is None for m in markers.values()):
        return None
    default = -1 if starting == "latest" else -2
    offsets = {str(p): default if m is None else m + 1 for p, m in markers.items()}
    shown = ", ".join(f"{topic}[{p}] from {o if o >= 0 else starting}" for p, o in offsets.items())
    log.warning(
        "query %s has no checkpoint offsets in %s but has counted before: "
        "resuming after the offsets Redis counted (%s)",
        query,
        checkpoint,
        shown,
    )
    return json.dumps({topic: offsets})


def _first_line(exc: BaseException) -> str:
    """The gist of a (often Java-stack-sized) query error, capped at 400 characters.

    A worker's Python error is what says what to do (``tone.errors.ServiceError: Redis at ... refused the
    credentials``): the exception line after the last Python traceback in the text; else the first line.
    """
    text = str(exc).strip()
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if "Traceback (most recent call last)" in line]
    if starts:
        pattern = re.compile(r"^(?:\w+\.)*\w+(?:Error|Exception|Exit): .+")
        found = next((line.strip() for line in lines[starts[-1] + 1 :] if pattern.match(line)), None)
        if found:
            return found[:400]
    return next((line.strip() for line in lines if line.strip()), type(exc).__name__)[:400]


__all__ = ["BatchReport", "ToneStream", "build_spark", "kafka_connector_config"]
