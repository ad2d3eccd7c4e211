"""`tone tune local|sagemaker` and `tone models list|show|publish|approve|rollback`. Heavy imports inside commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tone.cli_common import cli_settings, fail
from tone.errors import ToneError

console = Console()
tune_app = typer.Typer(
    help="Hyperparameter tuning from one spec (tuning/*.yaml): on SageMaker, or locally with Optuna.",
    no_args_is_help=True,
)
models_app = typer.Typer(
    help="The model registry (TONE_REGISTRY_URI: a directory or s3://bucket/prefix).", no_args_is_help=True
)

SPEC_HELP = "Tuning spec (YAML), e.g. tuning/rnn.yaml."
DATA_HELP = "Dataset: vader-tweets, a CSV/JSONL with text,label, ... (default: the spec's data)."


def _say(line: str) -> None:
    console.print(line, highlight=False, markup=False)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@tune_app.command("local")
def tune_local(
    spec: Annotated[Path, typer.Option(help=SPEC_HELP)] = Path("tuning/rnn-quick.yaml"),
    data: Annotated[str | None, typer.Option(help=DATA_HELP)] = None,
    parallel: Annotated[
        int | None, typer.Option(help="Concurrent trials (default: the spec's max_parallel_jobs).")
    ] = None,
    workdir: Annotated[
        Path | None, typer.Option(help="Where trials, results.json, objective.png and optuna.db go.")
    ] = None,
    publish: Annotated[
        bool, typer.Option(help="Publish the best trial's model to the registry as a candidate.")
    ] = True,
) -> None:
    """Run the spec's trials locally with Optuna (each trial is the SageMaker entry point), publish the best."""
    from model_training.tune_local import LocalTuner
    from model_training.tuning_spec import load_spec
    from tone.registry import Registry

    settings = cli_settings()
    try:
        tuning = load_spec(spec)
        tuner = LocalTuner(
            tuning, settings, workdir=workdir or settings.model_dir / "tuning", data=data, parallel=parallel, say=_say
        )
        result = tuner.run()
    except ToneError as exc:
        raise fail(exc) from None
    table = Table(title=f"study {result.study}")
    for col in ("trial", "state", tuning.objective.metric, "epochs", "seconds", *tuning.parameters):
        table.add_column(col)
    for row in result.trials:
        mark = " *" if result.best is not None and row.number == result.best.number else ""
        table.add_row(
            f"{row.number}{mark}",
            row.state.lower(),
            "" if row.value is None else f"{row.value:.4f}",
            str(row.epochs),
            f"{row.seconds:.0f}",
            *[_fmt(v) for v in row.params.values()],
        )
    console.print(table)
    console.print(f"results: {result.workdir / 'results.json'}; plot: {result.plot}", highlight=False)
    if result.best is None:
        raise fail(ToneError("no trial completed; see the train.log of each trial under " + str(result.workdir)))
    if publish:
        try:
            version = Registry.from_settings(settings).publish(
                Path(result.best.model_dir),
                source={
                    "backend": "local",
                    "study": result.study,
                    "trial": result.best.number,
                    "objective": {tuning.objective.metric: result.best.value},
                    "spec": str(spec),
                },
            )
        except ToneError as exc:
            raise fail(exc) from None
        console.print(
            f"published [bold]{version.version}[/bold] as a {version.status} "
            f"(test_macro_f1 {version.metrics.get('test_macro_f1', float('nan')):.4f}); "
            f"promote it with: tone models approve {version.version}",
            highlight=False,
        )


@tune_app.command("sagemaker")
def tune_sagemaker(
    spec: Annotated[Path, typer.Option(help=SPEC_HELP)] = Path("tuning/rnn.yaml"),
    data: Annotated[str | None, typer.Option(help=DATA_HELP)] = None,
    bucket: Annotated[
        str | None, typer.Option(help="S3 bucket [env: TONE_SAGEMAKER_BUCKET] (default: the SDK's default bucket).")
    ] = None,
    role: Annotated[str | None, typer.Option(help="Execution role ARN [env: TONE_SAGEMAKER_ROLE].")] = None,
    wait: Annotated[
        bool, typer.Option(help="Follow the job to the end, then fetch and publish the best model.")
    ] = True,
    poll: Annotated[float, typer.Option(help="Seconds between status checks.")] = 30.0,
    workdir: Annotated[Path | None, typer.Option(help="Local scratch directory.")] = None,
) -> None:
    """Launch the spec as a SageMaker hyperparameter tuning job; fetch the best model and publish it."""
    import tempfile

    from model_training.tune_sagemaker import SageMakerTuner
    from model_training.tuning_spec import load_spec
    from tone.registry import Registry

    settings = cli_settings()
    scratch = workdir or Path(tempfile.mkdtemp(prefix="tone-sagemaker-"))
    try:
        tuner = SageMakerTuner(load_spec(spec), settings, data=data, bucket=bucket, role=role, say=_say)
        tuner.launch(scratch)
        if not wait:
            console.print(
                f"not waiting; check it with: aws sagemaker describe-hyper-parameter-tuning-job "
                f"--hyper-parameter-tuning-job-name {tuner.job_name}",
                highlight=False,
            )
            return
        result = tuner.harvest(tuner.follow(poll_s=poll), scratch)
        if result.artifact_dir is None:
            raise fail(ToneError(f"tuning job {result.tuning_job} ended {result.status} with no best model"))
        version = Registry.from_settings(settings).publish(
            result.artifact_dir,
            source={
                "backend": "sagemaker",
                "tuning_job": result.tuning_job,
                "training_job": result.best_training_job,
                "model_uri": result.model_uri,
                "spec": str(spec),
            },
        )
    except ToneError as exc:
        raise fail(exc) from None
    console.print(f"published [bold]{version.version}[/bold] as a candidate from {result.best_training_job}")


@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every registered version with its status and metrics, newest first."""
    from tone.registry import Registry

    settings = cli_settings()
    try:
        versions = Registry.from_settings(settings).versions()
    except ToneError as exc:
        raise fail(exc) from None
    if as_json:
        console.print_json(json.dumps([{"version": v.version, "status": v.status, **v.registration} for v in versions]))
        return
    table = Table(title=f"registry {settings.registry_uri}")
    for col in ("version", "status", "test_macro_f1", "val_macro_f1", "created", "source"):
        table.add_column(col, overflow="fold")
    colors = {"approved": "green", "candidate": "yellow", "archived": "dim"}
    for v in versions:
        src = v.registration.get("source", {})
        table.add_row(
            v.version,
            f"[{colors[v.status]}]{v.status}[/]",
            _fmt(v.metrics.get("test_macro_f1", "")),
            _fmt(v.metrics.get("val_macro_f1", "")),
            v.registration.get("created_at", ""),
            " ".join(f"{k}={src[k]}" for k in ("backend", "study", "trial", "tuning_job") if k in src),
        )
    console.print(table)


@models_app.command("show")
def models_show(version: Annotated[str, typer.Argument(help="A version from `tone models list`.")]) -> None:
    """One version's registration (metrics, params, file checksums, source) and status, as JSON."""
    from tone.registry import Registry

    try:
        v = Registry.from_settings(cli_settings()).get(version)
    except ToneError as exc:
        raise fail(exc) from None
    console.print_json(json.dumps({"status": v.status, **v.registration}))


@models_app.command("publish")
def models_publish(
    path: Annotated[Path, typer.Argument(help="A model artifact directory (e.g. from `tone train --out`).")],
) -> None:
    """Register a trained artifact as a candidate (checksums verified first)."""
    from tone.registry import Registry

    try:
        v = Registry.from_settings(cli_settings()).publish(path, source={"backend": "manual", "path": str(path)})
    except ToneError as exc:
        raise fail(exc) from None
    console.print(f"{v.version}: {v.status}")


@models_app.command("approve")
def models_approve(
    version: Annotated[str, typer.Argument(help="The candidate to promote.")],
    force: Annotated[bool, typer.Option(help="Skip the metric gate.")] = False,
    margin: Annotated[float | None, typer.Option(help="Required improvement [env: TONE_APPROVE_MARGIN].")] = None,
    metric: Annotated[str | None, typer.Option(help="Metric compared [env: TONE_APPROVE_METRIC].")] = None,
) -> None:
    """Approve a version if its metric beats the approved one's by the margin; running streams pick it up."""
    from tone.registry import Registry

    try:
        line = Registry.from_settings(cli_settings()).approve(version, force=force, margin=margin, metric=metric)
    except ToneError as exc:
        raise fail(exc) from None
    console.print(line, highlight=False)


@models_app.command("rollback")
def models_rollback(
    to: Annotated[str | None, typer.Option(help="Version to approve (default: the previously approved one).")] = None,
) -> None:
    """Re-approve the previous (or a given) version and archive the current one; no metric gate."""
    from tone.registry import Registry

    try:
        line = Registry.from_settings(cli_settings()).rollback(to)
    except ToneError as exc:
        raise fail(exc) from None
    console.print(line, highlight=False)
