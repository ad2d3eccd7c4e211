"""`tone data`, `tone train`, `tone evaluate` and `tone bench scorers`. torch is imported inside the commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tone.cli_common import cli_settings, err_console, fail
from tone.errors import ToneError

console = Console()
data_app = typer.Typer(help="Fetch and inspect labelled datasets.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)

DATA_HELP = "vader-tweets, vader-reviews, a TweetEval directory, a Sentiment140 CSV, or a CSV/JSONL with text,label"


@data_app.command("fetch")
def data_fetch(force: Annotated[bool, typer.Option(help="Download again even if cached.")] = False) -> None:
    """Download the 4,200 VADER-rated tweets (and its rated review snippets) with pip into the data directory."""
    from model_training.datasets import fetch_vader, label_counts, load_vader

    settings = cli_settings()
    try:
        path = fetch_vader(settings.data_dir, force=force)
        tweets = load_vader(settings.data_dir, ["tweets"])
    except ToneError as exc:
        raise fail(exc) from None
    console.print(f"VADER ground truth in {path}: {len(tweets)} tweets {label_counts(tweets)}")


@data_app.command("split")
def data_split(data: Annotated[str, typer.Option(help=DATA_HELP)] = "vader-tweets") -> None:
    """Show the deterministic stratified 80/10/10 split every command uses."""
    from model_training.datasets import label_counts, load_dataset, split_examples

    try:
        split = split_examples(load_dataset(data, cli_settings().data_dir))
    except ToneError as exc:
        raise fail(exc) from None
    for name in ("train", "val", "test"):
        part = getattr(split, name)
        console.print(f"{name}: {len(part)} {label_counts(part)}")


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
    unlabeled: Annotated[str | None, typer.Option(help="Texts the teacher labels (a dataset spec).")] = None,
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
) -> None:
    """Train a scorer, evaluate it on the held-out test split, save a verified artifact."""
    from model_training.hparams import HParams
    from model_training.workflow import train_and_save
    from tone.scorers.loader import default_model_path

    settings = cli_settings()
    try:
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
        )
    except ValueError as exc:
        raise fail(exc) from None
    try:
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
    except ToneError as exc:
        raise fail(exc) from None


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
    from model_training.datasets import load_dataset, split_examples
    from model_training.evaluate import confusion_png
    from model_training.workflow import evaluate_scorer
    from tone.scorers.loader import load_scorer

    settings = cli_settings()
    if split not in ("test", "val", "train", "all"):
        raise fail(ValueError(f"--split must be test, val, train or all, got {split!r}"))
    try:
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
    except ToneError as exc:
        raise fail(exc) from None
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


@bench_app.command("scorers")
def bench_scorers(
    tweets: Annotated[int, typer.Option(help="How many tweets (cycled from the dataset).")] = 2000,
    scorers: Annotated[list[str] | None, typer.Option("--scorer", help="Scorers to run (default: all).")] = None,
    pipeline: Annotated[bool, typer.Option(help="Include the Hugging Face pipeline references.")] = True,
    repeat: Annotated[int, typer.Option(help="Time each run this many times and keep the best.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Tweets/s of each scorer on the same tweets, beside HF pipeline() per tweet and with batch_size=64."""
    from model_training.bench import run_scorer_bench

    try:
        result = run_scorer_bench(
            cli_settings(),
            n=tweets,
            scorers=scorers,
            with_pipeline=pipeline,
            repeat=repeat,
            say=lambda m: err_console.print(m, highlight=False),
        )
    except ToneError as exc:
        raise fail(exc) from None
    if as_json:
        console.print_json(json.dumps(result))
        return
    table = Table(
        title=f"scorer throughput, {result['tweets']} tweets, {result['device']}, {result['threads']} threads, "
        f"best of {result['repeat']}"
    )
    for col in ("scorer", "model", "tweets/s", "seconds", "vs pipeline/tweet", "vs pipeline b64"):
        table.add_column(col)
    for row in result["rows"]:
        table.add_row(
            row["name"],
            row["model"],
            f"{row['tweets_per_s']:.0f}",
            f"{row['seconds']:.2f}",
            f"{row['vs_pipeline_per_tweet']:.1f}x" if row.get("vs_pipeline_per_tweet") else "",
            f"{row['vs_pipeline_b64']:.2f}x" if row.get("vs_pipeline_b64") else "",
        )
    console.print(table)


@bench_app.command("replay")
def bench_replay(
    tweets: Annotated[int, typer.Option(help="Tweets to measure (after a warm-up).")] = 20000,
    scorer: Annotated[str, typer.Option(help="rnn, transformer, vader or an artifact path.")] = "rnn",
    rate: Annotated[float | None, typer.Option(help="Produce at this many tweets/s (default: flat out).")] = None,
    trigger: Annotated[float, typer.Option(help="Seconds between micro-batches.")] = 0.5,
    warmup: Annotated[int, typer.Option(help="Tweets sent first and not measured.")] = 2000,
    max_tasks: Annotated[
        int | None,
        typer.Option(help="Tasks per micro-batch (default: one per core; 0: one per Kafka partition)."),
    ] = None,
    reference: Annotated[
        bool, typer.Option(help="Also run Spark's predict_batch_udf pattern with the same model, and compare.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Whole-path replay on the running stack: sustained tweets/s, produce->Redis latency, time per stage."""
    from streaming.bench import run_replay_bench
    from tone.scorers.loader import ensure_default_rnn

    settings = cli_settings()
    if scorer == "rnn":
        ensure_default_rnn(settings, say=lambda m: err_console.print(m, highlight=False))

    def say(message: str) -> None:
        err_console.print(message, highlight=False)

    options: dict[str, Any] = {
        "tweets": tweets,
        "scorer": scorer,
        "rate": rate,
        "trigger_seconds": trigger,
        "warmup": warmup,
        "say": say,
    }
    if max_tasks is not None:
        options["max_tasks"] = max_tasks
    results = [run_replay_bench(settings, **options)]
    if reference:
        results.append(
            run_replay_bench(settings, reference=True, **{k: v for k, v in options.items() if k != "max_tasks"})
        )
        results[0]["vs_reference"] = results[0]["tweets_per_s"] / results[1]["tweets_per_s"]
    if as_json:
        console.print_json(json.dumps(results))
        return
    for result in results:
        lat = result["latency_s"]
        stage = ", ".join(f"{k.removesuffix('_s')} {v:.2f}s" for k, v in result["stage_task_s"].items())
        if result["pipeline"] != "tone stream":
            stage = "n/a (one Spark plan)"
        console.print(
            f"[{result['pipeline']}] {result['tweets']} tweets, scorer {result['scorer']}, rate "
            f"{result['rate'] or 'max'}: {result['tweets_per_s']:.0f} tweets/s sustained over {result['wall_s']:.1f}s "
            f"in {result['batches']} batches; produce->Redis p50 {lat['p50']:.2f}s p95 {lat['p95']:.2f}s "
            f"p99 {lat['p99']:.2f}s; task time: {stage}; batch wall {result['batch_wall_s']:.2f}s",
            highlight=False,
            markup=False,  # the "[tone stream]" tag is text, not rich markup
        )
    if reference:
        console.print(f"tone stream vs predict_batch_udf reference: {results[0]['vs_reference']:.2f}x")
