"""`tone config show`: the effective settings, where each comes from, and what is allowed."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from tone_cli._common import cli_settings, console

app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


@app.command("show")
def show(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the effective settings (secrets masked), the variable that sets each, and what is allowed."""
    import os

    from tone.settings import Settings, allowed_values, env_name

    settings = cli_settings()
    rows = []
    for field in Settings.model_fields:
        value = getattr(settings, field)
        shown = "" if value is None else str(value)  # SecretStr prints as '**********'
        name = env_name(field)
        rows.append(
            {
                "setting": field,
                "env": name,
                "value": shown,
                "source": "env" if name in os.environ else "default",
                "allowed": allowed_values(field),
            }
        )
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title="tweet-tone settings")
    for col in ("env", "value", "source", "allowed"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(row["env"], row["value"], row["source"], row["allowed"])
    console.print(table)
