"""`tone stack up|down|status|check|env`: the Docker-less local stack (dev tooling, see devstack/)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from tone_cli._common import cli_settings, console, dev_tool

app = typer.Typer(
    help="The Docker-less local stack: Apache Kafka (KRaft), Redis, moto (local AWS).",
    no_args_is_help=True,
)


def _stack() -> Any:
    """The local stack of the configured settings (devstack.stack.LocalStack)."""
    return dev_tool("devstack.stack").LocalStack(cli_settings())


@app.command("up")
def up() -> None:
    """Start Apache Kafka, Redis and moto (and MLflow with TONE_STACK_MLFLOW), wait until healthy, create the topics."""
    _stack().up(log=console.print)
    console.print('[green]stack is up[/green]; point clients at it with: [bold]eval "$(tone stack env)"[/bold]')


@app.command("down")
def down() -> None:
    """Stop the services `tone stack up` started (by PID file); leaves anything else alone."""
    if not _stack().down(log=console.print):
        console.print("nothing was running")


@app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show each node's state, role, PID, address and log file. Exits 1 unless all are running."""
    rows = _stack().status()
    if as_json:
        console.print_json(json.dumps([{**r.__dict__, "log": str(r.log)} for r in rows]))
    else:
        table = Table(title="local stack")
        for col in ("node", "software", "role", "state", "pid", "address", "log"):
            table.add_column(col, overflow="fold")
        colors = {"running": "green", "stopped": "dim", "stale": "yellow", "unhealthy": "red"}
        for r in rows:
            state = f"[{colors[r.state]}]{r.state}[/]"
            table.add_row(r.name, r.software, r.role, state, str(r.pid or ""), r.address, str(r.log))
        console.print(table)
    if any(r.state != "running" for r in rows):
        raise typer.Exit(1)


@app.command("check")
def check(
    messages: Annotated[int, typer.Option(help="Messages to send through the broker and read back.")] = 100,
) -> None:
    """Prove the running stack works: a produce/consume round trip on a scratch topic and a Redis SET/GET."""
    timings = _stack().check(messages)
    parts = ", ".join(f"{k}={v:.3f}" for k, v in timings.items())
    console.print(f"[green]ok[/green]: {messages} messages through the broker and back; {parts}")


@app.command("env")
def env() -> None:
    """Print `export` lines that point this project's clients at the local stack."""
    for key, value in _stack().client_env().items():
        typer.echo(f"export {key}={value}")
