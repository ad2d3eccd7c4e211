"""`tone stream`: run the Spark job until stopped (or until the topic is idle, for demos and benchmarks)."""

from __future__ import annotations

from typing import Annotated

import typer

from tone_cli._common import cli_settings, err_console


def stream(
    scorer: Annotated[
        str | None,
        typer.Option(
            help="rnn, transformer, vader, registry (follow the approved model), registry:VERSION or an artifact "
            "path [env: TONE_SCORER]"
        ),
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(help="Checkpoint directory, on the driver's disk [env: TONE_CHECKPOINT_DIR]/<query>."),
    ] = None,
    query: Annotated[str, typer.Option(help="Query name (also names its checkpoint and offset bookkeeping).")] = "tone",
    trigger: Annotated[
        float | None, typer.Option(help="Seconds between micro-batches [env: TONE_TRIGGER_SECONDS]")
    ] = None,
    max_per_trigger: Annotated[
        int | None, typer.Option(help="Max records per batch [env: TONE_MAX_PER_TRIGGER]")
    ] = None,
    starting_offsets: Annotated[str, typer.Option(help="earliest or latest, for a new checkpoint.")] = "earliest",
    source: Annotated[
        str | None,
        typer.Option(
            help="Kafka source: python (this project's, no jars) or native (Spark's format(\"kafka\") with the "
            "connector jars) [env: TONE_KAFKA_SOURCE]"
        ),
    ] = None,
    max_restarts: Annotated[
        int | None,
        typer.Option(
            help="Restarts from the checkpoint in a row (no batch between) before giving up [env: TONE_MAX_RESTARTS]"
        ),
    ] = None,
    until_idle: Annotated[
        float | None, typer.Option(help="Stop after this many seconds with no new records (default: run forever).")
    ] = None,
) -> None:
    """Kafka -> Spark Structured Streaming -> scorer -> per-user tone in Redis (exactly once), DLQ, scored topic."""
    from model_training.defaults import ensure_default_rnn
    from streaming.job import BatchReport, ToneStream, build_spark, kafka_connector_config
    from streaming.monitor import open_monitor
    from tone.settings import checkpoint_path

    settings = cli_settings()
    where = checkpoint_path(checkpoint, "--checkpoint") if checkpoint else settings.checkpoint_dir / query
    spec = scorer or settings.scorer
    if "rnn" in settings.route_table(spec).specs():
        # Trained once when missing (and said so), before the workers need it; a tampered one is refused.
        ensure_default_rnn(settings, say=err_console.print)

    def report(r: BatchReport) -> None:
        err_console.print(
            f"batch {r.batch_id}: {r.records} records, {r.invalid} invalid, "
            f"score {r.score_s:.2f}s, redis {r.redis_s:.2f}s, lag {r.max_lag_s:.2f}s, "
            f"models {sorted(r.model_versions)}"
            + (f", shadow {sorted(r.shadow_models)} on {r.shadowed} tweets" if r.shadowed else ""),
            highlight=False,
        )

    job = ToneStream(
        settings,
        scorer=spec,
        checkpoint=where,
        query_name=query,
        trigger_seconds=trigger or settings.trigger_seconds,
        max_per_trigger=settings.max_per_trigger if max_per_trigger is None else max_per_trigger,
        starting_offsets=starting_offsets,
        on_batch=report,
        source=source,
    )
    extra = kafka_connector_config(settings) if job.source == "native" else {}
    spark = build_spark(
        settings.spark_master,
        extra=extra,
        ui_port=settings.spark_ui_port,
        driver_host=settings.spark_driver_host,
        bind_address=settings.spark_driver_bind_address,
        jars_dir=settings.jars_dir,
    )
    job.monitor = open_monitor(job)
    ui = spark.sparkContext.uiWebUrl or "off (TONE_SPARK_UI_PORT=0)"
    metrics = (
        f"http://127.0.0.1:{settings.metrics_port}/metrics" if settings.metrics_port else "off (TONE_METRICS_PORT=0)"
    )
    shadowing = f" (shadow: {job.config.shadow})" if job.config.shadow else ""
    err_console.print(
        f"streaming {settings.kafka_topic_tweets} -> Redis with scorer {spec}{shadowing}, {job.source} Kafka source; "
        f"Spark UI {ui}; metrics {metrics}; Ctrl-C stops",
        highlight=False,
    )
    try:
        job.run(spark, until_idle, max_restarts=max_restarts)
    except KeyboardInterrupt:
        pass
    finally:
        job.monitor.close()
        spark.stop()
    invalid = job.totals["invalid"]
    per_tweet = "".join(
        f" {name}={job.totals[name]}" for name in ("duplicates", "deletes", "forgotten") if job.totals[name]
    )
    restarts = f" restarts={job.restarts}" if job.restarts else ""
    typer.echo(f"stopped after {job.batches} batches: records={job.records} invalid={invalid}{per_tweet}{restarts}")
