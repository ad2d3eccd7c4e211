"""What every `tone` command module shares: loading the settings (or exiting with the reason) and failing cleanly.

Light on purpose (typer, rich): `tone --help` imports every command module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console

from tone.errors import ToneError

if TYPE_CHECKING:  # settings pull in pydantic-settings (~0.25 s): imported in the commands, not for --help
    from tone.settings import Settings

err_console = Console(stderr=True)


def cli_settings() -> Settings:
    """The settings, with logging set up from them; a bad value exits 2 with the message naming the variable."""
    from tone.settings import get_settings

    try:
        settings = get_settings()
    except ToneError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    import logging

    # Library log lines (model refresh decisions, fallbacks) go to stderr at TONE_LOG_LEVEL; py4j is chatty at INFO.
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("py4j", "kafka", "botocore", "urllib3", "sagemaker"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    return settings


def fail(exc: Exception) -> typer.Exit:
    """Print the error and return the exit (code 1) for the caller to raise."""
    err_console.print(f"[red]error:[/red] {exc}", highlight=False)
    return typer.Exit(1)
