"""`tone train` and `tone evaluate`. torch is imported inside the commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tone.errors import ConfigError
from tone_cli._common import DATA_HELP, cli_settings, console

SPLITS = ("test", "val", "train", "all")


def train(
    model: Annotated[str, typer.Option(help="rnn or transformer.")] = "rnn",
    data: Annotated[str | None, typer.Option(help=f"{DATA_HELP} (default: the model's recipe)")] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="A smoke run: vader-tweets, one epoch, short tweets (not a good model).")
    ] = False,
    extra_data: Annotated[
        list[str] | None,
        typer.Option(help="More labelled data for the train split only (default: none)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Artifact directory (default: the model dir's default-<model>).")
    ] = None,
    base_model: Annotated[
        str | None, typer.Option(help="Transformer to fine-tune: hub id or local dir (default: packaged MiniLM).")
    ] = None,
    languages: Annotated[
        str | None,
        typer.Option(
            help="Languages the model reads, recorded in its manifest (ISO 639-1, comma-separated; default: its "
            "training data's, en). A multilingual --base-model declares its own: e.g. ar,de,en,es,fr,hi,it,pt."
        ),
    ] = None,
    teacher: Annotated[
        str | None, typer.Option(help="Distil from this scorer's soft labels: vader, transformer or a path.")
    ] = None,
    unlabeled: Annotated[
        str | None, typer.Option(help="Texts the teacher labels: a dataset spec, or train (the training texts).")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default per model).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs (default: the recipe's).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (default: the recipe's).")] = None,
    max_length: Annotated[int | None, typer.Option(help="Tokens kept per tweet (default: the recipe's).")] = None,
    hidden_size: Annotated[int, typer.Option(help="GRU hidden size per direction (rnn).")] = 96,
    dropout: Annotated[float | None, typer.Option(help="Dropout (default per model).")] = None,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 0.01,
    warmup: Annotated[float | None, typer.Option(help="Warm-up fraction of steps (default per model).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
    patience: Annotated[
        int | None, typer.Option(help="Early-stopping patience in epochs (0: off; default: the recipe's).")
    ] = None,
    distill_weight: Annotated[float, typer.Option(help="Weight of teacher-labelled texts in the loss.")] = 0.5,
    class_weight: Annotated[
        float | None,
        typer.Option(
            help="Weight rows by inverse label frequency to this power (0: off, 1: balanced; default: the recipe's)."
        ),
    ] = None,
    confidence_weight: Annotated[
        float, typer.Option(help="Weight rows by the labellers' confidence to this power (0: off).")
    ] = 0.0,
    lexicon: Annotated[
        bool, typer.Option(help="rnn: VADER's lexicon as fixed token features, its words as whole tokens.")
    ] = True,
    vader_stack: Annotated[
        bool,
        typer.Option(
            help="rnn: stack VADER's sentence scores on the network's output (fitted on the val split; VADER then "
            "runs on every scored tweet)."
        ),
    ] = True,
    onnx: Annotated[
        bool, typer.Option(help="transformer: also export an ONNX Runtime graph (the CPU backend) into the artifact.")
    ] = True,
    int8: Annotated[
        bool, typer.Option(help="transformer: also try an int8 ONNX graph, kept only if its accuracy guard passes.")
    ] = True,
) -> None:
    """Train a scorer, evaluate it on the held-out test split, save a verified artifact.

    Without options it follows the model's recommended recipe (its data, epochs, tweet length and class weights are
    measured in docs/models.md); any option given replaces the recipe's value.
    """
    from model_training.defaults import recipe_for, recipe_hparams
    from model_training.workflow import train_and_save
    from tone.scoring.loader import default_model_path

    settings = cli_settings()
    given = {
        "lr": lr,
        "epochs": epochs,
        "batch_size": batch_size,
        "max_length": max_length,
        "hidden_size": hidden_size,
        "dropout": dropout,
        "weight_decay": weight_decay,
        "warmup": warmup,
        "seed": seed,
        "patience": patience,
        "distill_weight": distill_weight,
        "class_weight": class_weight,
        "confidence_weight": confidence_weight,
        "lexicon": int(lexicon),
        "vader_stack": int(vader_stack),
    }
    hp = recipe_hparams(model, given, quick=quick)
    train_and_save(
        settings,
        model=model,
        out=out or default_model_path(settings, model),
        data=data or recipe_for(model, quick=quick).data,
        extra_data=extra_data,
        hp=hp,
        teacher=teacher,
        unlabeled=unlabeled,
        base_model=base_model,
        languages=_language_list(languages),
        say=lambda m: print(m, flush=True),
        onnx=onnx,
        int8=int8,
    )


def _language_list(text: str | None) -> list[str] | None:
    """``--languages``: codes normalised (pt-BR -> pt); a ConfigError naming the option for one that is not a code."""
    from tone.language import UND, normalize_tag

    if text is None:
        return None
    codes = []
    for raw in text.replace(" ", ",").split(","):
        if not raw:
            continue
        code = normalize_tag(raw)
        if code is None or code == UND:
            msg = f"--languages: {raw!r} is not a language code (ISO 639-1, such as en or pt)"
            raise ConfigError(msg)
        codes.append(code)
    if not codes:
        msg = "--languages: give at least one language code"
        raise ConfigError(msg)
    return codes


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
    """Accuracy, macro-F1, macro-recall, per-class P/R/F1 and a confusion matrix on a split of a dataset.

    Several sources (``--data vader-tweets,crowdflower-tweets``) are reported one by one: a score over the mix would
    hide a model that only does well on the larger source.
    """
    if split not in SPLITS:
        msg = f"--split must be one of {', '.join(SPLITS)}, got {split!r}"
        raise ConfigError(msg)
    from model_training.evaluate import confusion_png
    from model_training.workflow import evaluate_scorer
    from tone.datasets import dataset_sources, load_dataset, oversampling, split_examples
    from tone.scoring.loader import load_scorer

    settings = cli_settings()
    # each source once: a repeat count (a*3) weighs training, not evaluation
    sources = list(dict.fromkeys(oversampling(s)[0] for s in dataset_sources(data)))
    scorers = {spec: load_scorer(spec, settings) for spec in models}
    reports: dict[str, dict[str, dict[str, Any]]] = {}  # source -> model -> report
    sizes: dict[str, int] = {}
    for source in sources:
        examples = load_dataset(source, settings.data_dir)
        part = examples if split == "all" else getattr(split_examples(examples), split)
        sizes[source] = len(part)
        reports[source] = {
            spec: {
                "model": spec,
                "kind": scorer.kind,
                "version": scorer.version,
                "data": source,
                "split": split,
                **evaluate_scorer(scorer, part),
            }
            for spec, scorer in scorers.items()
        }
    report_dir.mkdir(parents=True, exist_ok=True)
    for source, by_model in reports.items():
        for spec, report in by_model.items():
            name = (
                f"eval-{Path(spec).name}-{split}"
                if len(sources) == 1
                else f"eval-{Path(spec).name}-{Path(source).name}-{split}"
            )
            # names, not with_suffix: a source or model path may hold dots of its own (tweets.jsonl)
            (report_dir / f"{name}.json").write_text(json.dumps(report, indent=2))
            confusion_png(report, report_dir / f"{name}.png", f"{spec} ({report['version']}) on {source}/{split}")
    many = compare or len(models) > 1
    if as_json:
        shaped: Any = {s: (r if many else next(iter(r.values()))) for s, r in reports.items()}
        console.print_json(json.dumps(shaped if len(sources) > 1 else shaped[sources[0]]))
        return
    for source, by_model in reports.items():
        if many:
            table = Table(title=f"{source} / {split} ({sizes[source]} texts)")
            for col in (
                "model",
                "version",
                "macro-F1",
                "accuracy",
                "macro-recall",
                "tweets/s",
                "confusion (rows: true)",
            ):
                table.add_column(col)
            for spec, r in by_model.items():
                table.add_row(
                    spec,
                    r["version"],
                    f"{r['macro_f1']:.4f}",
                    f"{r['accuracy']:.4f}",
                    f"{r['macro_recall']:.4f}",
                    f"{r['tweets_per_s']:.0f}",
                    confusion_text(r),
                )
            console.print(table)
            continue
        r = next(iter(by_model.values()))
        console.print(
            f"{r['model']} ({r['version']}) on {source}/{split}, n={r['n']}: macro_f1={r['macro_f1']:.4f} "
            f"accuracy={r['accuracy']:.4f} macro_recall={r['macro_recall']:.4f}"
        )
        table = Table()
        for col in ("label", "precision", "recall", "f1", "support"):
            table.add_column(col)
        for label, c in r["per_class"].items():
            table.add_row(label, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"]))
        console.print(table)
        console.print(f"confusion (rows: true, columns: predicted {', '.join(r['labels'])}):\n{confusion_text(r)}")
    console.print(f"reports written to {report_dir}/")


def confusion_text(report: dict[str, Any]) -> str:
    """The confusion matrix as text, one line per true label: ``negative: 120 30 6``."""
    width = max(len(label) for label in report["labels"])
    return "\n".join(
        f"{label:>{width}}: " + " ".join(f"{int(n):>4}" for n in row)
        for label, row in zip(report["labels"], report["confusion"], strict=True)
    )
