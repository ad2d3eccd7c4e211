"""The reference pipelines for `tone bench replay`: Spark's own ``predict_batch_udf`` pattern.

Same model, same Redis aggregates, on either Kafka source: the project's (``python``) or Spark's own connector
(``native``: what a Spark user would write by hand). The differences are the usual way of writing such a job:
JSON parsed by Spark SQL (``from_json``), validity checked with column expressions, the model applied through
``pyspark.ml.functions.predict_batch_udf`` (model loaded once per worker by Spark), and the scored rows collected
to the driver in ``foreachBatch`` to update Redis. Invalid rows are dropped here (no dead-letter topic), which
only makes the reference cheaper.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np

from streaming.job import use_local_checkpoint_manager
from streaming.kafka_source import SOURCE_NAME
from streaming.process import JobConfig
from tone.kafka.config import KafkaConnection

TWEET_SCHEMA = "id string, user_id string, text string, created_at string"


def make_predict_fn(config: JobConfig) -> Callable[[], Callable[[np.ndarray], np.ndarray]]:
    """``predict_batch_udf``'s factory: load the scorer, return texts -> probabilities."""

    def factory() -> Callable[[np.ndarray], np.ndarray]:
        from streaming.process import current_scorer

        scorer = current_scorer(config)

        def predict(texts: np.ndarray) -> np.ndarray:
            return np.asarray(scorer.predict_proba([str(t) for t in texts]), dtype=np.float32)

        return predict

    return factory


def start_reference(spark: Any, job: Any, source: str = "python") -> Any:
    """Start the reference query with a ToneStream's settings and config; returns the StreamingQuery.

    ``source``: ``python`` (format tone_kafka) or ``native`` (Spark's ``format("kafka")``; needs the connector).
    """
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import functions as F  # noqa: N812 - Spark's convention
    from pyspark.sql.types import ArrayType, FloatType

    from streaming.job import BatchReport
    from tone.aggregates.deltas import Scored, batch_deltas
    from tone.aggregates.factory import open_store
    from tone.labels import polarity
    from tone.scoring.loader import load_scorer

    s, config = job.settings, job.config
    labels = load_scorer(config.scorer, s).labels  # the driver only needs the label order
    score = predict_batch_udf(make_predict_fn(config), return_type=ArrayType(FloatType()), batch_size=256)
    store = open_store(s)

    raw = (
        spark.readStream.format("kafka" if source == "native" else SOURCE_NAME)
        .options(**KafkaConnection.from_settings(s).spark_options())
        .option("subscribe", s.kafka_topic_tweets)
        .option("startingOffsets", "earliest")
        .load()
    )
    parsed = raw.select(
        "partition", "offset", "timestamp", F.from_json(F.col("value").cast("string"), TWEET_SCHEMA).alias("t")
    )
    valid = parsed.where(
        F.col("t.user_id").isNotNull() & (F.length(F.trim("t.text")) > 0) & F.col("t.created_at").isNotNull()
    )
    scored = valid.select("partition", "offset", "timestamp", "t.*", score(F.col("t.text")).alias("probs"))

    def sink(df: Any, batch_id: int) -> None:
        import time

        started = time.time()
        rows = df.collect()
        matrix = np.asarray([r.probs for r in rows], dtype=np.float64).reshape(len(rows), len(labels))
        tweets = []
        for r, row_probs, pol in zip(rows, matrix, polarity(matrix, labels), strict=True):
            probs = dict(zip(labels, map(float, row_probs), strict=True))
            label = max(probs, key=lambda k: probs[k])
            created = datetime.fromisoformat(r.created_at).timestamp()
            tweets.append(Scored(r.user_id, r.id, created, label, probs, float(pol), r.text, "reference"))
        if tweets:
            # one range per batch: the reference counts on Spark's batch id for idempotency
            store.apply_range(
                f"{config.query}-ref",
                "batch",
                0,
                batch_id,
                batch_id,
                batch_deltas(tweets, s.ewma_half_life_s, s.recent_tweets),
            )
        now = time.time()
        report = BatchReport(batch_id, records=len(rows), valid=len(rows), started=started, finished=now)
        report.lags = [now - r.timestamp.timestamp() for r in rows[:: max(1, len(rows) // 2000)]]
        job.reports.append(report)

    use_local_checkpoint_manager(spark, str(job.checkpoint))  # the tone stream's checkpoint writes: a fair comparison
    return (
        scored.writeStream.foreachBatch(sink)
        .option("checkpointLocation", str(job.checkpoint))
        .trigger(processingTime=f"{job.trigger_seconds} seconds")
        .start()
    )
