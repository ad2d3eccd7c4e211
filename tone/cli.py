"""The `tone` command line. Heavy modules are imported inside the commands that need them."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from producer import cli as producer_cli
from streaming import cli as stream_cli
from tone import __version__, cli_lookup, cli_models, cli_tune
from tone.cli_common import cli_settings, fail
from tone.errors import ToneError

app = typer.Typer(
    help="Streaming tweet tone analyzer: Kafka -> Spark -> tone scorers -> per-user tone in Redis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
stack_app = typer.Typer(
    help="The Docker-less local stack: Kafka-protocol broker (Tansu), Redis, moto (local AWS).",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")
app.add_typer(stack_app, name="stack")
app.add_typer(cli_models.data_app, name="data")
app.add_typer(cli_models.bench_app, name="bench")
app.add_typer(cli_tune.tune_app, name="tune")
app.add_typer(cli_tune.models_app, name="models")
app.command("produce")(producer_cli.produce)
app.command("stream")(stream_cli.stream)
app.command("lookup")(cli_lookup.lookup)
app.command("top")(cli_lookup.top)
app.command("serve")(cli_lookup.serve)
app.command("train")(cli_models.train)
app.command("evaluate")(cli_models.evaluate)

console = Console()


def _version(value: bool) -> None:
    if value:
        console.print(f"tweet-tone {__version__}")
        raise typer.Exit


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Streaming tweet tone analyzer."""


@config_app.command("show")
def config_show(
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


@stack_app.command("up")
def stack_up() -> None:
    """Start the broker, Redis and moto (idempotent), wait until healthy and create the topics."""
    from tone.stack import LocalStack

    stack = LocalStack(cli_settings())
    try:
        stack.up(log=console.print)
    except ToneError as exc:
        raise fail(exc) from None
    console.print('[green]stack is up[/green]; point clients at it with: [bold]eval "$(tone stack env)"[/bold]')


@stack_app.command("down")
def stack_down() -> None:
    """Stop the services `tone stack up` started (by PID file); leaves anything else alone."""
    from tone.stack import LocalStack

    stopped = LocalStack(cli_settings()).down(log=console.print)
    if not stopped:
        console.print("nothing was running")


@stack_app.command("status")
def stack_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show each service's state, PID, address and log file. Exits 1 unless all are running."""
    from tone.stack import LocalStack

    rows = LocalStack(cli_settings()).status()
    if as_json:
        console.print_json(json.dumps([{**r.__dict__, "log": str(r.log)} for r in rows]))
    else:
        table = Table(title="local stack")
        for col in ("service", "state", "pid", "address", "log"):
            table.add_column(col, overflow="fold")
        colors = {"running": "green", "stopped": "dim", "stale": "yellow", "unhealthy": "red"}
        for r in rows:
            table.add_row(r.name, f"[{colors[r.state]}]{r.state}[/]", str(r.pid or ""), r.address, str(r.log))
        console.print(table)
    if any(r.state != "running" for r in rows):
        raise typer.Exit(1)


@stack_app.command("check")
def stack_check(
    messages: Annotated[int, typer.Option(help="Messages to send through the broker and read back.")] = 100,
) -> None:
    """Prove the running stack works: a produce/consume round trip on a scratch topic and a Redis SET/GET."""
    from tone.stack import LocalStack

    try:
        timings = LocalStack(cli_settings()).check(messages)
    except ToneError as exc:
        raise fail(exc) from None
    parts = ", ".join(f"{k}={v:.3f}" for k, v in timings.items())
    console.print(f"[green]ok[/green]: {messages} messages through the broker and back; {parts}")


@stack_app.command("env")
def stack_env() -> None:
    """Print `export` lines that point this project's clients at the local stack."""
    from tone.stack import LocalStack

    for key, value in LocalStack(cli_settings()).client_env().items():
        typer.echo(f"export {key}={value}")


if __name__ == "__main__":
    app()
