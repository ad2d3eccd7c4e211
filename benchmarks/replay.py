"""`tone bench replay`: N tweets through producer -> Kafka -> Spark -> scorer -> Redis, on the running stack.

Two modes:
- live (default): the producer sends while the stream runs. Measures sustained tweets/s (first tweet produced ->
  last batch applied in Redis), per-record produce->Redis latency percentiles (from each record's Kafka timestamp
  to its range's Redis write), and the time per stage.
- backlog: the stream is stopped, N tweets are produced, then the stream restarts from its checkpoint and drains
  them; tweets/s is N over the time from the first batch's start to the last batch's end. The stream's capacity,
  without the producer sharing the cores.

A warm-up set goes through first, so Python worker start-up and model loading are not in the figures (the Python
workers, and so the loaded models, outlive a query restart within one Spark session). Everything runs on fresh
topics and a fresh Redis key prefix, so a benchmark never mixes with real data.

Pipelines (``pipeline`` in every result): ``tone stream`` (this project's job, Kafka source as chosen),
``predict_batch_udf reference`` (Spark's ``predict_batch_udf`` pattern on the project's Kafka source) and
``native + predict_batch_udf reference`` (the same on Spark's own Kafka source: what a Spark user would write).

The limit on this machine is the scorer itself: :func:`scorer_alone` times it on the same tweets in one process with
every core, and each tone stream row gets its rate as a share of that (``vs_scorer``).
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

from tone.kafka.admin import create_topics, delete_topics
from tone.kafka.config import KafkaConnection
from tone.settings import Settings


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def _bench_settings(settings: Settings) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return settings.model_copy(
        update={
            "kafka_topic_tweets": f"bench-{tag}",
            "kafka_topic_dlq": f"bench-{tag}.dlq",
            "kafka_topic_scored": f"bench-{tag}.scored",
            "redis_key_prefix": f"bench{tag}:",
        }
    )


def _create_topics(s: Settings) -> None:
    wanted = {s.kafka_topic_tweets: s.kafka_partitions, s.kafka_topic_dlq: 1, s.kafka_topic_scored: 1}
    create_topics(KafkaConnection.from_settings(s), wanted)


def tagged_texts(texts: list[str], share: float, seed: int = 11) -> list[str]:
    """``texts`` where about ``share`` more carry 1-3 tags from a pool of 2,000 (Zipf-like: a few very common).

    The rated tweets hold their own tags already (10.4% of them carry one, 1.3 on average): a feed denser in tags
    than that is a stress case.
    """
    import random

    rng = random.Random(seed)
    pool = [f"#topic{i}" for i in range(1990)] + [f"$tick{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(10)]
    weights = [1 / (i + 1) for i in range(len(pool))]
    out = []
    for text in texts:
        tagged = rng.random() < share
        out.append(" ".join([text, *rng.choices(pool, weights, k=rng.randint(1, 3))]) if tagged else text)
    return out


def _produce(s: Settings, texts: list[str], n: int, seed: int, rate: float | None, lang: str | None = "en") -> float:
    from producer.kafka_writer import TweetWriter
    from producer.replay import replay
    from producer.sources import raw_from, synthetic_events

    with TweetWriter(s) as writer:
        events = raw_from(lambda: synthetic_events(texts, n, users=5000, seed=seed, lang=lang))
        summary = replay(events, writer, rate=rate)
    return summary.seconds


def _produce_beside(query: Any, s: Settings, texts: list[str], n: int, rate: float | None, lang: str | None) -> float:
    """Produce while the stream runs, from a process of its own, as a producer would run in production.

    In the driver's interpreter the producer competed for the GIL with Spark's foreachBatch callbacks.
    """
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        pending = pool.apply_async(_produce, (s, texts, n, 2, rate, lang))
        while not pending.ready():
            if not query.isActive:
                msg = "the stream stopped while the producer was running"
                raise RuntimeError(msg)
            time.sleep(0.05)
        seconds: float = pending.get()
    return seconds


WARMUP_ROUNDS: Final = 8


def _warm_up(
    s: Settings, texts: list[str], warmup: int, wait_for: Callable[[int, float], None], say: Callable[[str], None]
) -> None:
    """Send the warm-up tweets in WARMUP_ROUNDS rounds, each processed before the next."""
    say(f"warm-up: {warmup} tweets in {WARMUP_ROUNDS} rounds (Python workers start, models load)")
    # Several micro-batches, not one: Spark hands tasks to whichever pooled Python worker is idle, and a worker that
    # so far only ran source reads loads the model on its first scoring task. With emit=ranges the pool holds up to
    # two workers per core (source reads and scoring tasks); measured on 2 cores: after 4 rounds, the first measured
    # batches still loaded the model in new workers (1-2 ms a tweet instead of ~0.2), which then dominated the p95
    # at 1,000 tweets/s.
    sent = 0
    for round_no in range(WARMUP_ROUNDS):
        n = warmup // WARMUP_ROUNDS if round_no < WARMUP_ROUNDS - 1 else warmup - sent
        _produce(s, texts, n, seed=10 + round_no, rate=None, lang=None)
        sent += n
        wait_for(sent, 600)


def _cleanup(s: Settings) -> None:
    import redis

    client = redis.Redis.from_url(s.redis_url)
    for key in client.scan_iter(f"{s.redis_key_prefix}*", count=1000):
        client.delete(key)
    client.close()
    delete_topics(KafkaConnection.from_settings(s), [s.kafka_topic_tweets, s.kafka_topic_dlq, s.kafka_topic_scored])


TONE: Final = "tone stream"
REFERENCE: Final = "predict_batch_udf reference"
NATIVE_REFERENCE: Final = "native + predict_batch_udf reference"
PIPELINES: Final = (TONE, REFERENCE, NATIVE_REFERENCE)
# What the measured tweets say of their language: declared (`en`, no detection) or nothing (each one detected).
DECLARED: Final = "declared"
DETECTED: Final = "detected"
LANGS: Final = (DECLARED, DETECTED)
# The replay cycles this many distinct tweets (VADER's rated set), and the scorer alone is timed on the same ones.
REPLAY_TEXTS: Final = 4200


def _start(pipeline: str, spark: Any, job: Any) -> Any:
    if pipeline == TONE:
        return job.start(spark)
    from benchmarks.reference import start_reference

    return start_reference(spark, job, source="native" if pipeline == NATIVE_REFERENCE else "python")


def batches_by_id(reports: Iterable[Any]) -> dict[int, Any]:
    """Each batch once, by its run that read the most records.

    A batch the backlog restart re-runs (the query was stopped after the batch's report, before Spark's commit)
    finds its records counted in Redis and reads nothing. Letting that re-run replace the first run lost the batch's
    records, and the bench then waited 900 s for records the stream had counted.
    """
    out: dict[int, Any] = {}
    for r in reports:
        if r.batch_id not in out or r.records > out[r.batch_id].records:
            out[r.batch_id] = r
    return out


def run_replay_bench(  # noqa: PLR0915 - one run, its set-up and figures
    settings: Settings,
    *,
    tweets: int,
    scorer: str,
    pipeline: str = TONE,
    source: str | None = None,
    backlog: bool = False,
    rate: float | None = None,
    trigger_seconds: float = 0.5,
    warmup: int = 2000,
    max_tasks: int | None = None,
    max_per_trigger: int | None = None,
    guarantee: str | None = None,
    lang: str = DECLARED,
    dedupe: bool = True,
    shadow: str = "none",
    tags: str | None = None,
    tagged_share: float = 0.0,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the whole path once with one pipeline and return its figures (see the module docstring).

    ``shadow``: a scorer spec the stream scores every tweet with in shadow too (TONE_SHADOW_SCORER, sample 1), or
    ``none``.
    ``tags``: None (the settings' TONE_TAGS), or on / off: TONE_TAGS for this run. ``tagged_share``: that share of
    the texts gets 1-3 more tags (:func:`tagged_texts`; 0: the rated tweets' own tags only), the same texts either way.
    ``dedupe``: False runs the stream with TONE_DEDUPE_HORIZON_S=0 (every tweet id is distinct here: only the cost
    of checking and recording them differs).

    ``guarantee``: the tone stream's TONE_OUTPUT_GUARANTEE for this run (default: the configured one).
    ``lang``: the measured tweets declare ``en`` (declared) or nothing (detected: the stream detects each one's
    language); the warm-up declares nothing either way, so the detector is loaded before the measurement.
    """
    from benchmarks.scorers import bench_texts
    from streaming.job import ToneStream, build_spark, kafka_connector_config

    for name, value, allowed in (("pipeline", pipeline, PIPELINES), ("lang", lang, LANGS)):
        if value not in allowed:
            msg = f"{name} must be one of {', '.join(allowed)}, got {value!r}"
            raise ValueError(msg)
    declared = "en" if lang == DECLARED else None
    s = _bench_settings(settings)
    s = s.model_copy(
        update={
            "output_guarantee": guarantee or s.output_guarantee,
            "dedupe_horizon_s": s.dedupe_horizon_s * dedupe,
            "shadow_scorer": shadow,
            "shadow_sample": 1.0,
            "tags": s.tags if tags is None else tags == "on",
        }
    )
    _create_topics(s)
    texts = bench_texts(settings, REPLAY_TEXTS)
    if tagged_share:
        texts = tagged_texts(texts, tagged_share)
    spark = build_spark(
        settings.spark_master, "tone-bench-replay", extra=kafka_connector_config(settings), jars_dir=settings.jars_dir
    )
    with tempfile.TemporaryDirectory() as tmp:
        job = ToneStream(
            s,
            scorer=scorer,
            checkpoint=Path(tmp) / "ckpt",
            query_name=f"bench-{uuid.uuid4().hex[:6]}",
            trigger_seconds=trigger_seconds,
            max_per_trigger=settings.max_per_trigger if max_per_trigger is None else max_per_trigger,
            max_tasks=max_tasks,
            source=source if pipeline == TONE else None,
        )
        query = _start(pipeline, spark, job)
        try:

            def batches() -> dict[int, Any]:
                return batches_by_id(job.reports)

            def processed() -> int:
                return sum(r.records for r in batches().values())

            def wait_for(count: int, timeout: float) -> None:
                deadline = time.monotonic() + timeout
                while processed() < count:
                    if not query.isActive or time.monotonic() > deadline:
                        msg = f"the stream processed {processed()} of {count} records before giving up"
                        raise RuntimeError(msg)
                    time.sleep(0.05)

            _warm_up(s, texts, warmup, wait_for, say)
            warm = set(batches())

            if backlog:
                query.stop()  # the checkpoint keeps its place; the Python workers keep their models
                say(f"backlog: producing {tweets} tweets with the stream stopped")
                produce_s = [_produce(s, texts, tweets, 2, None, declared)]
                say("draining the backlog")
                query = _start(pipeline, spark, job)
                wait_for(warmup + tweets, 900)
                measured = [r for i, r in batches().items() if i not in warm]
                t0 = min(r.started for r in measured)
            else:
                say(f"measuring: {tweets} tweets" + (f" at {rate:.0f}/s" if rate else " as fast as the producer goes"))
                t0 = time.time()
                produce_s = [_produce_beside(query, s, texts, tweets, rate, declared)]
                wait_for(warmup + tweets, 600)
                measured = [r for i, r in batches().items() if i not in warm]
            t_end = max(r.finished for r in measured)
            phases = spark_phases(query.recentProgress, {r.batch_id for r in measured})
        finally:
            query.stop()
            spark.stop()
    _cleanup(s)

    return {
        "pipeline": pipeline,
        "source": job.source if pipeline == TONE else ("native" if pipeline == NATIVE_REFERENCE else "python"),
        "mode": "backlog" if backlog else "live",
        "scorer": scorer,
        "tweets": tweets,
        "rate": None if backlog else rate,
        "trigger_seconds": trigger_seconds,
        "max_tasks": job.max_tasks if pipeline == TONE else None,
        "max_per_trigger": job.max_per_trigger if pipeline == TONE else 0,  # the references read all available
        "guarantee": s.output_guarantee if pipeline == TONE else "at_least_once",  # Spark's Kafka sink has no other
        "lang": lang,
        "dedupe_horizon_s": s.dedupe_horizon_s,
        "shadow": shadow,
        "tags": s.tags,
        "tagged_texts": tags is not None,
        "tagged_share": tagged_share,
        "produce_s": produce_s[0] if produce_s else None,
        **_figures(measured, tweets, t0, t_end),
        "spark_ms": phases,
    }


# Spark's own timing of each micro-batch (StreamingQueryProgress.durationMs), in the order they happen.
SPARK_PHASES: Final = ("latestOffset", "getBatch", "queryPlanning", "walCommit", "addBatch", "commitOffsets")


def spark_phases(progress: Iterable[dict[str, Any]], batch_ids: set[int]) -> dict[str, float]:
    """Median milliseconds of each phase of Spark's micro-batch over ``batch_ids``, from the query's progress.

    ``triggerExecution`` is the whole batch; ``addBatch`` is the sink's part (foreachBatch: our tasks and the driver
    around them); ``outside_addBatch`` is the rest, Spark's own cost per batch whatever the batch holds.
    """
    by_phase: dict[str, list[float]] = {}
    for p in progress:
        # StreamingQueryProgress is a dict of the progress JSON (pyspark >= 3.4; plain dicts before)
        batch, durations = p.get("batchId"), p.get("durationMs")
        if batch not in batch_ids or not durations:
            continue
        for phase, ms in durations.items():
            by_phase.setdefault(phase, []).append(float(ms))
        if "triggerExecution" in durations:
            rest = float(durations["triggerExecution"]) - float(durations.get("addBatch", 0))
            by_phase.setdefault("outside_addBatch", []).append(rest)
    return {phase: percentile(values, 50) for phase, values in sorted(by_phase.items())}


def scorer_alone(settings: Settings, scorer: str, say: Callable[[str], None] = print) -> dict[str, Any]:
    """The scorer's own rate on the replay's distinct tweets: one process, every core, best of 3, no Spark or Kafka."""
    from benchmarks.scorers import run_scorer_bench

    result = run_scorer_bench(
        settings, n=REPLAY_TEXTS, scorers=[scorer], with_pipeline=False, repeat=3, accuracy_data=None, say=say
    )
    row = result["rows"][0]
    return {
        "tweets": REPLAY_TEXTS,
        "threads": result["threads"],
        "version": row["model"],
        "tweets_per_s": row["tweets_per_s"],
    }


def _figures(measured: list[Any], tweets: int, t0: float, t_end: float) -> dict[str, Any]:
    """Rate, latency percentiles and time per stage over the measured batches."""
    lags = [lag for r in measured for lag in r.lags]
    wall = t_end - t0
    batch_wall = sum(r.finished - r.started for r in measured)
    stages = ("parse_s", "lang_s", "score_s", "shadow_s", "redis_s", "kafka_s")
    stage = {k: sum(getattr(r, k) for r in measured) for k in stages}
    return {
        "batches": len(measured),
        "wall_s": wall,
        "tweets_per_s": tweets / wall,
        "latency_s": {
            "p50": percentile(lags, 50),
            "p95": percentile(lags, 95),
            "p99": percentile(lags, 99),
            "max": max(lags) if lags else None,
            "samples": len(lags),
        },
        "stage_task_s": stage,  # summed over tasks (they run in parallel, one per Kafka partition)
        "batch_wall_s": batch_wall,
        "model_versions": sorted({v for r in measured for v in r.model_versions}),
        "shadowed": sum(r.shadowed for r in measured),
        # per batch: records, seconds from foreachBatch start to its Redis writes, worst lag (for tail analysis)
        "per_batch": [
            {
                "records": r.records,
                "wall_s": round(r.finished - r.started, 3),
                "max_lag_s": round(r.max_lag_s, 3),
                "parse_s": round(r.parse_s, 3),
                "score_s": round(r.score_s, 3),
            }
            for r in measured
        ],
    }
