"""`tone train` follows each model's recipe unless told otherwise; the first-use RNN is the same recipe."""

import pytest
from typer.testing import CliRunner

from model_training import defaults
from model_training.defaults import QUICK, RECIPES, recipe_hparams
from tone.errors import ConfigError
from tone_cli.main import app


def test_recipe_values_fill_what_is_not_given_and_given_values_win():
    hp = recipe_hparams("rnn", {"epochs": None, "lr": 0.01})
    assert (hp.epochs, hp.max_length, hp.class_weight, hp.lr) == (1, 64, 0.5, 0.01)
    assert recipe_hparams("rnn", {"max_length": 96}).max_length == 96
    assert recipe_hparams("transformer", {}).batch_size == RECIPES["transformer"].hparams["batch_size"]
    with pytest.raises(ConfigError, match="model must be one of rnn, transformer"):
        recipe_hparams("lstm", {})


@pytest.fixture
def trained(monkeypatch):
    calls = []
    monkeypatch.setattr("model_training.workflow.train_and_save", lambda settings, **kw: calls.append(kw))
    return calls


def test_tone_train_without_options_trains_the_recipe(trained, tmp_path):
    result = CliRunner().invoke(app, ["train", "--model", "rnn", "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    (call,) = trained
    assert call["data"] == RECIPES["rnn"].data == "vader-tweets*3,crowdflower-tweets"
    assert call["hp"] == recipe_hparams("rnn", {})
    assert call["hp"].lexicon == 1
    assert call["hp"].vader_stack == 1


def test_tone_train_options_replace_the_recipe_and_quick_is_small(trained, tmp_path):
    out = ["--out", str(tmp_path / "m")]
    runner = CliRunner()
    args = ["train", "--data", "x.csv", "--epochs", "3", "--no-lexicon", "--no-vader-stack", *out]
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, ["train", "--quick", *out]).exit_code == 0
    chosen, quick = trained
    assert chosen["data"] == "x.csv" and chosen["hp"].epochs == 3 and chosen["hp"].lexicon == 0
    assert chosen["hp"].vader_stack == 0
    assert chosen["hp"].class_weight == 0.5  # the recipe's, as nothing replaced it
    assert quick["data"] == QUICK.data == "vader-tweets" and quick["hp"].epochs == 1


def test_the_first_use_rnn_is_the_rnn_recipe(monkeypatch, tmp_path):
    from tone.settings import Settings

    calls = []
    monkeypatch.setattr("model_training.workflow.train_and_save", lambda settings, **kw: calls.append(kw))
    defaults.ensure_default_rnn(Settings(model_dir=tmp_path), say=lambda _: None)
    (call,) = calls
    assert call["data"] == RECIPES["rnn"].data and call["hp"] == recipe_hparams("rnn", {})
