"""`tone tag`, `tone tags` and `tone timeline`: the conversation's tone (docs/conversation.md), Redis only."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from tone.errors import ConfigError
from tone_cli._common import cli_settings, console, print_tone


def _tag(value: str) -> str:
    from tone.tags import check_tag

    try:
        return check_tag(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def tag(
    name: Annotated[str, typer.Argument(help="A hashtag (#launch, or launch) or a cashtag ('$TSLA': quote the $).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A tag's tone: its tweets, counts by label, means, EWMA, recent tweets and the shifts detected."""
    from tone.aggregates.factory import open_store
    from tone.aggregates.timeline import tag_report

    settings = cli_settings()
    wanted = _tag(name)
    result = tag_report(open_store(settings), wanted, settings)
    if result is None:
        console.print(f"no tweets seen with {wanted}")
        raise typer.Exit(1)
    if as_json:
        console.print_json(json.dumps(result))
        return
    print_tone(wanted, result, "no tone: no route scores its tweets' languages (TONE_ROUTES)")
    for s in result["shifts"]:
        console.print(
            f"  shift to {s['direction']} at {s['at']} (since {s['since']}): negative share "
            f"{s['negative_share_before']:.2f} -> {s['negative_share_after']:.2f}",
            highlight=False,
        )
    if not result["shifts"]:
        console.print("  no shift detected")


def tags(
    by: Annotated[str, typer.Option(help="negative, positive (mean probability) or n (most tweets).")] = "negative",
    n: Annotated[int, typer.Option(help="How many tags.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The most negative (positive, or most active: --by n) tags."""
    from tone.aggregates.factory import open_store
    from tone.aggregates.store import TAG_RANKS
    from tone.aggregates.timeline import top_tags

    if by not in TAG_RANKS:
        msg = f"--by must be one of {', '.join(TAG_RANKS)}, got {by!r}"
        raise ConfigError(msg)
    rows = top_tags(open_store(cli_settings()), by, n)
    if as_json:
        console.print_json(json.dumps(rows))
        return
    columns = ["rank", "tag", "tweets", "counts"] if by == "n" else ["rank", "tag", f"mean p({by})", "tweets", "counts"]
    table = Table(*columns, title="most active tags" if by == "n" else f"most {by} tags")
    for i, row in enumerate(rows, 1):
        counts = " ".join(f"{k} {v}" for k, v in sorted(row["counts"].items()))
        score = [] if by == "n" else [f"{row['score']:.3f}"]
        table.add_row(str(i), row["tag"], *score, str(row["tweets"]), counts)
    console.print(table)


def timeline(
    tag_name: Annotated[
        str | None, typer.Option("--tag", help="A tag's timeline (default: the whole stream's).")
    ] = None,
    minutes: Annotated[int, typer.Option(help="How many minutes, up to the latest tweet.")] = 60,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Per-minute tone in event time (the whole stream, or one tag), with the shifts detected."""
    from tone.aggregates.factory import open_store
    from tone.aggregates.timeline import check_minutes, timeline_report
    from tone.tags import STREAM

    settings = cli_settings()
    try:
        check_minutes(minutes)
    except ValueError as exc:
        msg = f"--{exc}"
        raise ConfigError(msg) from None
    wanted = STREAM if tag_name is None else _tag(tag_name)
    result = timeline_report(open_store(settings), wanted, minutes, settings)
    if result is None:
        console.print("no tweets counted yet" if tag_name is None else f"no tweets seen with {wanted}")
        raise typer.Exit(1)
    if as_json:
        console.print_json(json.dumps(result))
        return
    table = Table("minute (UTC)", "tweets", "negative", "neutral", "positive", "mean polarity", "closed",
                  title=f"{wanted if tag_name else 'the stream'}, last {minutes} minutes")  # fmt: skip
    for m in result["minutes"]:
        pol = "" if m["mean_polarity"] is None else f"{m['mean_polarity']:+.3f}"
        c = m["counts"]
        table.add_row(m["minute"][:16], str(m["tweets"]), str(c.get("negative", 0)), str(c.get("neutral", 0)),
                      str(c.get("positive", 0)), pol, "yes" if m["closed"] else "")  # fmt: skip
    console.print(table)
    for s in result["shifts"]:
        console.print(f"  shift to {s['direction']} at {s['at']} (since {s['since']})", highlight=False)
