"""The stream as a Spark application, for ``spark-submit`` on a cluster (README: "On a Spark cluster").

``spark-submit --master spark://HOST:7077 [--jars <connector jars>] --py-files tone-job.zip streaming/submit.py
--until-idle 30``. Settings come from the ``TONE_*`` environment of the submitting shell (the driver reads them and
ships them to the executors inside the job's configuration); the master, jars and Python environment come from
spark-submit. The default RNN must be trained already (`tone train`): a cluster job does not train on first use.
The driver does what `tone stream`'s does besides running the query: it serves the Prometheus metrics on
``TONE_METRICS_PORT``, writes the health record the dashboard and ``/stream/health`` read, and commits the lag
group ``TONE_KAFKA_GROUP_PREFIX`` + query after each batch.
"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the stream on the session spark-submit configured; print a summary line."""
    parser = argparse.ArgumentParser(prog="streaming/submit.py", description=__doc__)
    parser.add_argument("--query", default="tone", help="query name (names the checkpoint and offset bookkeeping)")
    parser.add_argument("--scorer", default=None, help="scorer spec [env: TONE_SCORER]")
    parser.add_argument("--source", default=None, help="python or native [env: TONE_KAFKA_SOURCE]")
    parser.add_argument("--checkpoint", default=None, help="checkpoint directory (default: TONE_CHECKPOINT_DIR/QUERY)")
    parser.add_argument("--until-idle", type=float, default=None, help="stop after this many idle seconds")
    args = parser.parse_args(argv)

    from pyspark.sql import SparkSession

    from streaming.job import ToneStream
    from streaming.kafka_source import KafkaDataSource
    from streaming.monitor import open_monitor
    from tone.settings import checkpoint_path, get_settings

    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spark = SparkSession.builder.appName(f"tweet-tone-{args.query}").getOrCreate()
    spark.dataSource.register(KafkaDataSource)
    job = ToneStream(
        settings,
        scorer=args.scorer,
        checkpoint=checkpoint_path(args.checkpoint, "--checkpoint")
        if args.checkpoint
        else settings.checkpoint_dir / args.query,
        query_name=args.query,
        trigger_seconds=settings.trigger_seconds,
        max_per_trigger=settings.max_per_trigger,
        source=args.source,
    )
    job.monitor = open_monitor(job)
    metrics = f"http://{settings.metrics_host}:{settings.metrics_port}/metrics" if settings.metrics_port else "off"
    print(f"streaming {settings.kafka_topic_tweets} with a {job.source} Kafka source; metrics {metrics}", flush=True)
    try:
        job.run(spark, args.until_idle)
    finally:
        job.monitor.close()
        spark.stop()
    invalid = job.totals["invalid"]
    print(f"stopped after {job.batches} batches: records={job.records} invalid={invalid}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
