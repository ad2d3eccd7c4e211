"""`tone produce`: replay a file, a dataset, a synthetic set or a live feed into the tweets topic (producer/)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from tone.errors import ConfigError
from tone_cli._common import cli_settings, err_console


def produce(
    source: Annotated[Path | None, typer.Argument(help="A .jsonl or .csv file of tweets.")] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Replay a labelled dataset's texts (vader-tweets...) with synthetic users.")
    ] = None,
    synthetic: Annotated[
        int | None, typer.Option(help="Generate N tweets from real texts, Zipf users, increasing timestamps.")
    ] = None,
    live: Annotated[
        str | None, typer.Option(help="Ingest a live feed: x (API v2 filtered stream) or bluesky (Jetstream).")
    ] = None,
    live_url: Annotated[
        str | None, typer.Option(help="Override the live feed's base URL (a proxy, or a local test server).")
    ] = None,
    users: Annotated[int, typer.Option(help="Synthetic user ids to draw from.")] = 1000,
    rate: Annotated[float | None, typer.Option(help="Tweets per second (default: as fast as possible).")] = None,
    speedup: Annotated[float | None, typer.Option(help="Replay original timestamps X times faster.")] = None,
    loop: Annotated[bool, typer.Option(help="Start over at the end, until interrupted or --limit.")] = False,
    limit: Annotated[int | None, typer.Option(help="Stop after this many input records.")] = None,
    send_invalid: Annotated[
        bool, typer.Option(help="Send invalid records too (they go to the dead-letter topic downstream).")
    ] = False,
    topic: Annotated[str | None, typer.Option(help="Topic (default: TONE_KAFKA_TOPIC_TWEETS).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for synthetic user ids.")] = 7,
) -> None:
    """Replay tweets into Kafka keyed by user id, with rate control, a progress line and a closing summary."""
    from producer import sources
    from producer.kafka_writer import TweetWriter
    from producer.replay import Summary, looped, replay
    from tone.datasets import load_dataset

    settings = cli_settings()

    def progress(s: Summary) -> None:
        err_console.print(f"sent {s.sent} ({s.invalid} invalid)", end="\r")

    chosen = [x for x in (source, dataset, synthetic, live) if x is not None]
    if len(chosen) != 1:
        msg = "give exactly one of SOURCE, --dataset, --synthetic or --live"
        raise ConfigError(msg)
    try:
        if live is not None:
            make = _live_source(live, live_url, settings, topic or settings.kafka_topic_tweets)
        elif source is not None:
            make = partial(sources.read_file, source)
        else:
            texts = [e.text for e in load_dataset(dataset or "vader-tweets", settings.data_dir)]
            events = (
                partial(sources.synthetic_events, texts, synthetic, users=users, seed=seed)
                if synthetic
                else partial(sources.dataset_events, texts, users=users, seed=seed)
            )
            make = partial(sources.raw_from, events)
        with TweetWriter(settings, topic=topic) as writer:
            summary = replay(
                looped(make, loop),
                writer,
                rate=rate,
                speedup=speedup,
                send_invalid=send_invalid,
                limit=limit,
                max_text_chars=settings.max_text_chars,
                max_message_bytes=settings.max_message_bytes,
                on_progress=progress if err_console.is_terminal else None,
            )
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(130) from None
    reasons = ", ".join(f"{k}={v}" for k, v in summary.reasons.most_common()) or "none"
    typer.echo(
        f"sent={summary.sent} valid={summary.valid} invalid={summary.invalid} ({reasons}) "
        + (f"deletions_and_erasures={summary.controls} " if summary.controls else "")
        + f"seconds={summary.seconds:.2f} tweets_per_s={summary.rate:.0f}"
    )


def _live_source(kind: str, base_url: str | None, settings: Any, topic: str) -> Callable[[], Iterator[Any]]:
    from producer import live

    if kind == "x":
        if settings.x_bearer_token is None:
            msg = "the X filtered stream needs a bearer token: set TONE_X_BEARER_TOKEN"
            raise ConfigError(msg)
        token = settings.x_bearer_token.get_secret_value()
        return partial(
            live.x_filtered_stream,
            token,
            base_url=base_url or live.X_API_BASE,
            backfill_minutes=settings.x_backfill_minutes,
        )
    if kind == "bluesky":
        from tone.kafka.config import KafkaConnection
        from tone.kafka.readers import open_reader

        reader = open_reader(KafkaConnection.from_settings(settings))
        try:
            cursor = live.resume_cursor(reader, topic, rewind_s=settings.jetstream_rewind_s)
        finally:
            reader.close()
        err_console.print(
            f"Jetstream: resuming at cursor {cursor} (the newest written to {topic}, less TONE_JETSTREAM_REWIND_S)"
            if cursor is not None
            else f"Jetstream: nothing of it in {topic} yet; starting from now"
        )
        return partial(
            live.bluesky_jetstream,
            base_url=base_url or live.JETSTREAM_BASE,
            cursor=cursor,
            rewind_s=settings.jetstream_rewind_s,
        )
    msg = f"--live must be x or bluesky, got {kind!r}"
    raise ConfigError(msg)
