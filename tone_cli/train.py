"""`tone train` and `tone evaluate`. torch is imported inside the commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tone.errors import ConfigError
from tone_cli._common import DATA_HELP, cli_settings, console

SPLITS = ("test", "val", "train", "all")


def train(
    model: Annotated[str, typer.Option(help="rnn or transformer.")] = "rnn",
    data: Annotated[str, typer.Option(help=DATA_HELP)] = "vader-tweets",
    extra_data: Annotated[
        list[str] | None,
        typer.Option(help="More labelled data for the train split only (default: vader-reviews for rnn)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Artifact directory (default: the model dir's default-<model>).")
    ] = None,
    base_model: Annotated[
        str | None, typer.Option(help="Transformer to fine-tune: hub id or local dir (default: packaged MiniLM).")
    ] = None,
    teacher: Annotated[
        str | None, typer.Option(help="Distil from this scorer's soft labels: vader, transformer or a path.")
    ] = None,
    unlabeled: Annotated[
        str | None, typer.Option(help="Texts the teacher labels: a dataset spec, or train (the training texts).")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default per model).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs (default per model).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (default per model).")] = None,
    max_length: Annotated[int, typer.Option(help="Tokens kept per tweet.")] = 128,
    hidden_size: Annotated[int, typer.Option(help="GRU hidden size per direction (rnn).")] = 96,
    dropout: Annotated[float | None, typer.Option(help="Dropout (default per model).")] = None,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 0.01,
    warmup: Annotated[float | None, typer.Option(help="Warm-up fraction of steps (default per model).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
    patience: Annotated[int, typer.Option(help="Early-stopping patience in epochs (0: off).")] = 2,
    distill_weight: Annotated[float, typer.Option(help="Weight of teacher-labelled texts in the loss.")] = 0.5,
    class_weight: Annotated[
        float, typer.Option(help="Weight rows by inverse label frequency to this power (0: off, 1: balanced).")
    ] = 0.0,
    confidence_weight: Annotated[
        float, typer.Option(help="Weight rows by the labellers' confidence to this power (0: off).")
    ] = 0.0,
) -> None:
    """Train a scorer, evaluate it on the held-out test split, save a verified artifact."""
    from model_training.hparams import HParams
    from model_training.workflow import train_and_save
    from tone.scoring.loader import default_model_path

    settings = cli_settings()
    hp = HParams(
        model=model,  # type: ignore[arg-type]  # checked in HParams.__post_init__
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
        max_length=max_length,
        hidden_size=hidden_size,
        dropout=dropout,
        weight_decay=weight_decay,
        warmup=warmup,
        seed=seed,
        patience=patience,
        distill_weight=distill_weight,
        class_weight=class_weight,
        confidence_weight=confidence_weight,
    )
    train_and_save(
        settings,
        model=model,
        out=out or default_model_path(settings, model),
        data=data,
        extra_data=extra_data,
        hp=hp,
        teacher=teacher,
        unlabeled=unlabeled,
        base_model=base_model,
        say=lambda m: print(m, flush=True),
    )


def evaluate(
    models: Annotated[list[str], typer.Argument(help="Scorers: rnn, transformer, vader, or artifact paths.")],
    data: Annotated[str, typer.Option(help=DATA_HELP)] = "vader-tweets",
    split: Annotated[str, typer.Option(help="test, val, train or all.")] = "test",
    compare: Annotated[bool, typer.Option("--compare", help="Side by side on the same split.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report.")] = False,
    report_dir: Annotated[Path, typer.Option(help="Where the JSON report and confusion-matrix PNG go.")] = Path(
        "reports"
    ),
) -> None:
    """Accuracy, macro-F1, macro-recall, per-class P/R/F1 and a confusion matrix on a split of a dataset."""
    if split not in SPLITS:
        msg = f"--split must be one of {', '.join(SPLITS)}, got {split!r}"
        raise ConfigError(msg)
    from model_training.evaluate import confusion_png
    from model_training.workflow import evaluate_scorer
    from tone.datasets import load_dataset, split_examples
    from tone.scoring.loader import load_scorer

    settings = cli_settings()
    examples = load_dataset(data, settings.data_dir)
    part = examples if split == "all" else getattr(split_examples(examples), split)
    reports = {}
    for spec in models:
        scorer = load_scorer(spec, settings)
        reports[spec] = {
            "model": spec,
            "kind": scorer.kind,
            "version": scorer.version,
            "data": data,
            "split": split,
            **evaluate_scorer(scorer, part),
        }
    report_dir.mkdir(parents=True, exist_ok=True)
    for spec, report in reports.items():
        stem = report_dir / f"eval-{Path(spec).name}-{split}"
        stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
        confusion_png(report, stem.with_suffix(".png"), f"{spec} ({report['version']}) on {data}/{split}")
    if as_json:
        console.print_json(json.dumps(reports if compare or len(reports) > 1 else next(iter(reports.values()))))
        return
    if compare or len(reports) > 1:
        table = Table(title=f"{data} / {split} ({len(part)} texts)")
        for col in ("model", "version", "macro-F1", "accuracy", "macro-recall", "tweets/s"):
            table.add_column(col)
        for spec, r in reports.items():
            table.add_row(
                spec,
                r["version"],
                f"{r['macro_f1']:.4f}",
                f"{r['accuracy']:.4f}",
                f"{r['macro_recall']:.4f}",
                f"{r['tweets_per_s']:.0f}",
            )
        console.print(table)
    else:
        r = next(iter(reports.values()))
        console.print(
            f"{r['model']} ({r['version']}) on {data}/{split}, n={r['n']}: macro_f1={r['macro_f1']:.4f} "
            f"accuracy={r['accuracy']:.4f} macro_recall={r['macro_recall']:.4f}"
        )
        table = Table()
        for col in ("label", "precision", "recall", "f1", "support"):
            table.add_column(col)
        for label, c in r["per_class"].items():
            table.add_row(label, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"]))
        console.print(table)
    console.print(f"reports written to {report_dir}/")
