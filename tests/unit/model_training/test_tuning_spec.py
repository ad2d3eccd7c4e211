"""The tuning spec: the shipped files load, and every invalid combination names its field."""

import pytest
import yaml

from model_training.tuning_spec import TuningSpecError, load_spec, parse_spec
from tests.helpers import REPO_ROOT

ROOT = REPO_ROOT


def base(**changes):
    spec = {
        "name": "t",
        "model": "rnn",
        "strategy": "Random",
        "max_jobs": 4,
        "parameters": {"lr": {"type": "continuous", "min": 0.001, "max": 0.01, "scaling": "Logarithmic"}},
        "static": {"epochs": 1},
    }
    spec.update(changes)
    return spec


@pytest.mark.parametrize("path", sorted((ROOT / "tuning").glob("*.yaml")))
def test_shipped_specs_are_valid(path):
    spec = load_spec(path)
    assert spec.parameters
    hp = spec.hparams({})
    assert hp.model == spec.model


def test_yaml_off_means_early_stopping_off(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(base()) + "early_stopping: Off\n")
    assert load_spec(path).early_stopping == "Off"


def test_trial_hparams_combine_static_and_sampled():
    spec = parse_spec(base(static={"epochs": 3, "patience": 0}))
    hp = spec.hparams({"lr": 0.002})
    assert (hp.lr, hp.epochs, hp.patience) == (0.002, 3, 0)
    assert spec.static_hyperparameters() == {"model": "rnn", "epochs": "3", "patience": "0"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"parameters": {"colour": {"type": "categorical", "values": ["red"]}}}, "parameters.colour: not a training"),
        ({"parameters": {"lr": {"type": "continuous", "min": 0.1, "max": 0.01}}}, "parameters.lr: min must be < max"),
        (
            {"parameters": {"dropout": {"type": "continuous", "min": 0, "max": 0.5, "scaling": "Logarithmic"}}},
            "parameters.dropout: Logarithmic scaling needs min > 0",
        ),
        ({"parameters": {"dropout": {"type": "continuous", "min": 0.1, "max": 0.99}}}, "leaves the allowed"),
        ({"parameters": {"hidden_size": {"type": "continuous", "min": 8, "max": 64}}}, "use type: integer"),
        ({"parameters": {"lr": {"type": "uniform", "min": 0, "max": 1}}}, "parameters.lr"),
        ({"static": {"lr": 0.1}}, "static.lr: also given a range"),
        ({"static": {"epochs": 0}}, "static.epochs"),
        ({"strategy": "Grid"}, "Grid: SageMaker grid search takes categorical"),
        ({"strategy": "Hyperband", "early_stopping": "Auto"}, "early_stopping: must be Off with strategy Hyperband"),
        ({"max_jobs": None}, "max_jobs: required"),
        ({"max_parallel_jobs": 9}, "max_parallel_jobs"),
        ({"objective": {"regex": "val=[0-9.]+"}}, "objective: Value error, regex needs exactly one capture group"),
        ({"spot": {"enabled": True, "max_wait_s": 100}}, "spot.max_wait_s"),
        ({"name": "x" * 40}, "name"),
        ({"instance": "ml.p3"}, "instance: Extra inputs are not permitted"),
        ({"model": "gbm"}, "model: must be one of rnn, transformer"),
    ],
)
def test_invalid_specs_name_the_field(change, message):
    with pytest.raises(TuningSpecError) as err:
        parse_spec(base(**change), source="spec.yaml")
    assert message.replace("Value error, ", "") in str(err.value)
    assert "spec.yaml" in str(err.value)


def test_grid_counts_its_points():
    spec = parse_spec(
        base(
            strategy="Grid",
            max_jobs=None,
            parameters={
                "batch_size": {"type": "categorical", "values": [32, 64]},
                "hidden_size": {"type": "categorical", "values": [48, 96, 128]},
            },
        )
    )
    assert spec.n_trials == 6


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(TuningSpecError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(TuningSpecError, match="not valid YAML"):
        load_spec(bad)
