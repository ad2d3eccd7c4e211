"""The `tone` command line: wires one module per command group under one root group (see `_errors.py`)."""

from __future__ import annotations

from typing import Annotated

import typer

from tone import __version__
from tone_cli import bench, config, conversation, data, lookup, models, produce, stack, stream, train, tune
from tone_cli._common import console
from tone_cli._errors import ToneGroup

app = typer.Typer(
    cls=ToneGroup,
    help="Streaming tweet tone analyzer: Kafka -> Spark -> tone scorers -> per-user tone in Redis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(config.app, name="config")
app.add_typer(stack.app, name="stack")
app.add_typer(data.app, name="data")
app.add_typer(bench.app, name="bench")
app.add_typer(tune.app, name="tune")
app.add_typer(models.app, name="models")
app.command("produce")(produce.produce)
app.command("stream")(stream.stream)
app.command("lookup")(lookup.lookup)
app.command("top")(lookup.top)
app.command("tag")(conversation.tag)
app.command("tags")(conversation.tags)
app.command("timeline")(conversation.timeline)
app.command("forget")(lookup.forget)
app.command("serve")(lookup.serve)
app.command("train")(train.train)
app.command("evaluate")(train.evaluate)


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


if __name__ == "__main__":
    app()
