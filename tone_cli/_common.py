"""What every `tone` command module shares: the settings (with logging set up from them) and the consoles.

Light on purpose (typer, rich): `tone --help` imports every command module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console

from tone.errors import ToneError
from tone_cli._errors import err_console

if TYPE_CHECKING:  # settings pull in pydantic-settings (~0.25 s): imported in the commands, not for --help
    from tone.settings import Settings

console = Console()

# What a --data option takes (tone.datasets.load_dataset); one text for every command that has the option.
DATA_HELP = (
    "vader-tweets, crowdflower-tweets, vader-reviews, a TweetEval directory, a Sentiment140 CSV, or a CSV/JSONL with "
    "text,label; several at once: vader-tweets,crowdflower-tweets"
)

__all__ = ["DATA_HELP", "cli_settings", "console", "dev_tool", "err_console", "say"]


def cli_settings() -> Settings:
    """The settings, with logging set up from them; a bad value raises ConfigError (exit 2, see `_errors`)."""
    import logging

    from tone.settings import get_settings

    settings = get_settings()
    # Library log lines (model refresh decisions, fallbacks) go to stderr at TONE_LOG_LEVEL; py4j is chatty at INFO.
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("py4j", "kafka", "botocore", "urllib3", "sagemaker"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    # librdkafka warns about every transient retry (a new broker's coordinator loading, a reconnect); its errors
    # surface as delivery reports and exceptions anyway.
    logging.getLogger("librdkafka").setLevel(max(logging.ERROR, logging.getLogger().level))
    return settings


def dev_tool(module: str) -> Any:
    """Import a dev-tooling module (devstack, benchmarks), which installed images leave out, or say what to do."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module.split(".", maxsplit=1)[0]:
            raise
        msg = f"{module} is dev tooling, not in this installation: run it from a checkout (pip install -e .)"
        raise ToneError(msg) from None


def say(message: str) -> None:
    """A progress line on stderr (stdout stays for results)."""
    err_console.print(message, highlight=False, markup=False)


def print_tone(name: str, result: dict[str, Any], no_tone: str) -> None:
    """A user's or a tag's public view (tone.aggregates.store.public_view): a line, then the labels' table."""
    from rich.table import Table

    languages = ", ".join(f"{lang} {n}" for lang, n in result["languages"].items())
    ewma = result["ewma_polarity"]
    tone = (
        f"mostly {result['dominant_label']}; mean polarity {result['mean_polarity']:+.3f}, recent (EWMA) {ewma:+.3f}"
        if ewma is not None
        else no_tone
    )
    console.print(
        f"[bold]{name}[/bold]: {result['tweets']} tweets ({languages}), {result['scored']} scored, {tone}; "
        f"seen {result['first_seen']} .. {result['last_seen']}",
        highlight=False,
    )
    table = Table("label", "tweets", "mean p")
    for label, p in sorted(result["mean_probs"].items()):
        table.add_row(label, str(result["counts"].get(label, 0)), f"{p:.3f}")
    console.print(table)
