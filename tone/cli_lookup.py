"""`tone lookup`, `tone top` and `tone serve`: read the live aggregates (Redis only)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def lookup(
    user_id: Annotated[str, typer.Argument(help="The user id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A user's tone: counts per label, mean probabilities, polarity (mean and recency-weighted), recent tweets."""
    from tone.cli_common import cli_settings
    from tone.lookup import USER_ID_RE, open_store, user_tone

    if not USER_ID_RE.match(user_id):
        console.print(f"[red]error:[/red] {user_id!r} is not a valid user id (letters, digits, _ . : @ -)")
        raise typer.Exit(2)
    result = user_tone(open_store(cli_settings()), user_id)
    if result is None:
        console.print(f"no tweets seen from {user_id}")
        raise typer.Exit(1)
    if as_json:
        console.print_json(json.dumps(result))
        return
    console.print(
        f"[bold]{user_id}[/bold]: {result['tweets']} tweets, mostly {result['dominant_label']}; "
        f"mean polarity {result['mean_polarity']:+.3f}, recent (EWMA) {result['ewma_polarity']:+.3f}; "
        f"seen {result['first_seen']} .. {result['last_seen']}",
        highlight=False,
    )
    table = Table("label", "tweets", "mean p")
    for label, p in sorted(result["mean_probs"].items()):
        table.add_row(label, str(result["counts"].get(label, 0)), f"{p:.3f}")
    console.print(table)
    for r in result["recent"][:5]:
        console.print(f"  {r['t']}  {r['label']:>8}  {r['polarity']:+.2f}  {r['text'][:70]}", highlight=False)


def top(
    by: Annotated[str, typer.Option(help="negative or positive.")] = "negative",
    n: Annotated[int, typer.Option(help="How many users.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Users with the highest mean probability of negative (or positive) tone."""
    from tone.cli_common import cli_settings
    from tone.lookup import open_store

    if by not in ("negative", "positive"):
        console.print(f"[red]error:[/red] --by must be negative or positive, got {by!r}")
        raise typer.Exit(2)
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
    """Serve the HTTP lookup API (OpenAPI page at /docs)."""
    import uvicorn

    from tone.api.app import create_app
    from tone.cli_common import cli_settings

    uvicorn.run(create_app(cli_settings()), host=host, port=port, log_level="info")
