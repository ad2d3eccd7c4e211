"""`tone tune local` end to end: real trials (the SageMaker entry point in subprocesses), Optuna, the registry."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from tests.helpers import toy_examples
from tone.registry import Registry
from tone.settings import load_settings
from tone_cli.main import app

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path, isolated):
    data = tmp_path / "toy.jsonl"
    data.write_text(
        "".join(json.dumps({"id": e.id, "text": e.text, "label": e.label}) + "\n" for e in toy_examples(180))
    )
    spec = {
        "name": "toy",
        "model": "rnn",
        "data": str(data),
        "strategy": "Bayesian",
        "max_jobs": 3,
        "max_parallel_jobs": 2,
        "early_stopping": "Auto",
        "random_seed": 3,
        "parameters": {
            "lr": {"type": "continuous", "min": 0.002, "max": 0.01, "scaling": "Logarithmic"},
            "hidden_size": {"type": "integer", "min": 8, "max": 16},
        },
        "static": {"epochs": 2, "patience": 0, "batch_size": 16, "max_length": 32},
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    return {
        "TONE_REGISTRY_URI": str(tmp_path / "registry"),
        "TONE_MODEL_DIR": str(tmp_path / "models"),
        "TONE_APPROVE_MARGIN": "0.0",
        "TONE_REDIS_URL": isolated.redis_url,  # where `tone models approve` reads the shadow evidence
        "TONE_REDIS_KEY_PREFIX": isolated.redis_key_prefix,
    }


def test_tune_local_runs_trials_and_publishes_the_best(env, tmp_path):
    runner = CliRunner()
    work = tmp_path / "work"
    result = runner.invoke(
        app, ["tune", "local", "--spec", str(tmp_path / "spec.yaml"), "--workdir", str(work)], env=env
    )
    assert result.exit_code == 0, result.output
    (study_dir,) = [p for p in work.iterdir() if p.is_dir() and p.name.startswith("toy-")]
    results = json.loads((study_dir / "results.json").read_text())
    trials = results["trials"]
    assert len(trials) == 3
    assert (study_dir / "objective.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for t in trials:
        assert t["state"] in ("COMPLETE", "PRUNED")
        assert 0.002 <= t["params"]["lr"] <= 0.01 and 8 <= t["params"]["hidden_size"] <= 16
        # every trial really ran the entry point with these values, and reported per epoch
        log = (study_dir / f"trial-{t['number']:03d}" / "train.log").read_text()
        assert f'"hidden_size": "{t["params"]["hidden_size"]}"' in log
        assert set(t["intermediate"]) <= {"1", "2"} and t["intermediate"]
    done = [t for t in trials if t["state"] == "COMPLETE"]
    best = max(done, key=lambda t: t["value"])

    settings = load_settings(registry_uri=env["TONE_REGISTRY_URI"], model_dir=tmp_path / "models")
    (candidate,) = Registry.from_settings(settings).versions()
    assert candidate.status == "candidate"
    assert candidate.registration["source"]["trial"] == best["number"]
    assert candidate.registration["params"]["hidden_size"] == str(best["params"]["hidden_size"])
    # The objective is the last regex match: the best epoch's validation macro-F1, which the manifest records too.
    assert candidate.metrics["val_macro_f1"] == pytest.approx(best["value"], abs=1e-4)

    # A tuned candidate has no evidence on live traffic yet: refused with what to do, unless forced with a reason.
    refused = runner.invoke(app, ["models", "approve", candidate.version], env=env)
    assert refused.exit_code == 1 and "tone models shadow" in " ".join(refused.output.split()), refused.output
    reason = "first model of this registry: nothing live to shadow against"
    approved = runner.invoke(app, ["models", "approve", candidate.version, "--force", "--reason", reason], env=env)
    assert approved.exit_code == 0, approved.output
    assert Registry.from_settings(settings).events()[-1]["reason"] == reason
    assert Registry.from_settings(settings).approved_version() == candidate.version
