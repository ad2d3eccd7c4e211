"""`tone tune local|sagemaker`: one tuning spec, run locally with Optuna or as a SageMaker tuning job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tone.errors import ToneError
from tone_cli._common import DATA_HELP, cli_settings, console

app = typer.Typer(
    help="Hyperparameter tuning from one spec (tuning/*.yaml): on SageMaker, or locally with Optuna.",
    no_args_is_help=True,
)

SPEC_HELP = "Tuning spec (YAML), e.g. tuning/rnn.yaml."
SPEC_DATA_HELP = f"Dataset (default: the spec's data): {DATA_HELP}."


def _say(line: str) -> None:
    console.print(line, highlight=False, markup=False)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@app.command("local")
def local(
    spec: Annotated[Path, typer.Option(help=SPEC_HELP)] = Path("tuning/rnn-quick.yaml"),
    data: Annotated[str | None, typer.Option(help=SPEC_DATA_HELP)] = None,
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
    tuning = load_spec(spec)
    tuner = LocalTuner(
        tuning, settings, workdir=workdir or settings.model_dir / "tuning", data=data, parallel=parallel, say=_say
    )
    result = tuner.run()
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
        raise ToneError("no trial completed; see the train.log of each trial under " + str(result.workdir))
    if publish:
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
        console.print(
            f"published [bold]{version.version}[/bold] as a {version.status} "
            f"(test_macro_f1 {version.metrics.get('test_macro_f1', float('nan')):.4f}); "
            f"promote it with: tone models approve {version.version}",
            highlight=False,
        )


@app.command("sagemaker")
def sagemaker(
    spec: Annotated[Path, typer.Option(help=SPEC_HELP)] = Path("tuning/rnn.yaml"),
    data: Annotated[str | None, typer.Option(help=SPEC_DATA_HELP)] = None,
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
        msg = f"tuning job {result.tuning_job} ended {result.status} with no best model"
        raise ToneError(msg)
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
    console.print(f"published [bold]{version.version}[/bold] as a candidate from {result.best_training_job}")
