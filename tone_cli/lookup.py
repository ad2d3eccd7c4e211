"""`tone lookup`, `tone top` and `tone serve`: the read side (serving/), Redis only."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from tone.errors import ConfigError
from tone_cli._common import cli_settings, console, print_tone


def lookup(
    user_id: Annotated[str, typer.Argument(help="The user id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A user's tone: counts per label, mean probabilities, polarity (mean and recency-weighted), recent tweets."""
    from serving.lookup import user_tone
    from tone.aggregates.factory import open_store
    from tone.events import check_user_id

    if problem := check_user_id(user_id):
        raise ConfigError(problem)
    result = user_tone(open_store(cli_settings()), user_id)
    if result is None:
        console.print(f"no tweets seen from {user_id}")
        raise typer.Exit(1)
    if as_json:
        console.print_json(json.dumps(result))
        return
    print_tone(user_id, result, "no tone: no route scores their languages (TONE_ROUTES)")
    for r in result["recent"][:5]:
        unscored = f"({r.get('lang', '?')})"
        tone = f"{r['label']:>8}  {r['polarity']:+.2f}" if r.get("label") else f"{unscored:>8}     -"
        console.print(f"  {r['t']}  {tone}  {r['text'][:70]}", highlight=False)


def top(
    by: Annotated[str, typer.Option(help="negative or positive.")] = "negative",
    n: Annotated[int, typer.Option(help="How many users.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Users with the highest mean probability of negative (or positive) tone."""
    from tone.aggregates.factory import open_store
    from tone.labels import RANKED_LABELS

    if by not in RANKED_LABELS:
        msg = f"--by must be one of {', '.join(RANKED_LABELS)}, got {by!r}"
        raise ConfigError(msg)
    rows = open_store(cli_settings()).top(by, n)
    if as_json:
        console.print_json(json.dumps([{"user_id": u, f"mean_p_{by}": s} for u, s in rows]))
        return
    table = Table("rank", "user", f"mean p({by})", title=f"most {by} users")
    for i, (u, s) in enumerate(rows, 1):
        table.add_row(str(i), u, f"{s:.3f}")
    console.print(table)


def serve(
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Serve the HTTP lookup API (OpenAPI page at /docs); TONE_API_WORKERS processes on the port (default 1)."""
    from serving.server import run

    run(cli_settings(), host, port)


def forget(
    user_id: Annotated[str, typer.Argument(help="The user id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask to confirm.")] = False,
) -> None:
    """Erase a user (GDPR, an account deleted): every key in Redis and their top-N entries, now.

    A tombstone keeps their older tweets out for TONE_DEDUPE_HORIZON_S (at least a day), so a replay does not bring
    them back; newer tweets count afresh. What stays elsewhere (Kafka topics until their retention): docs/operations.md.
    """
    import time

    from tone.aggregates.factory import open_store
    from tone.events import check_user_id

    if problem := check_user_id(user_id):
        raise ConfigError(problem)
    if not yes and not typer.confirm(f"erase every tweet and aggregate of {user_id!r}?"):
        raise typer.Exit(1)
    erased = open_store(cli_settings()).forget(user_id, time.time())
    console.print(f"{user_id}: {'erased' if erased else 'nothing stored (a tombstone is kept all the same)'}")
