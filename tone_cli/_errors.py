"""The one place where errors become messages and exit codes (like huggingface_hub's ``cli/_errors.py``).

- :class:`~tone.errors.ConfigError` (a setting or option out of range): exit 2;
- any other :class:`~tone.errors.ToneError` (something the user can act on): exit 1;
- anything else is a bug and keeps its traceback.

Commands raise; they never print an error and exit themselves.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from tone.errors import ConfigError, ToneError

err_console = Console(stderr=True)

EXIT_ERROR = 1
EXIT_USAGE = 2


def exit_code(exc: ToneError) -> int:
    """The exit code for an error this project raises on purpose."""
    return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_ERROR


class ToneGroup(TyperGroup):
    """The root command group: every subcommand runs inside its ``invoke``, so one handler covers them all."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click Context; its module is private
        """Run the command; print a known error without a traceback and exit with its code."""
        try:
            return super().invoke(ctx)
        except ToneError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, markup=True)
            raise typer.Exit(exit_code(exc)) from None
