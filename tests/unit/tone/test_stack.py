"""VADER's sentence scores stacked on the RNN: the layer, its fit, its place in the artifact."""

import json

import numpy as np
import pytest

from model_training.stacking import add_vader_stack, fit_stack, source_weights
from tests.helpers import tiny_rnn
from tone.datasets import Example
from tone.errors import ArtifactError
from tone.scoring import factory
from tone.scoring.stack import STACK_FILE, Stack, VaderFeatures, feature_names, stack_inputs
from tone.scoring.vader import VaderScorer

LABELS = ("negative", "neutral", "positive")
TEXTS = ["I love it!!!", "worst. day. ever.", "the bus is at 9", "not good at all", "great :)", "ok", "meh…", "😀"]


def test_vader_features_are_vaders_own_scores():
    got = VaderFeatures()(TEXTS)
    compound = VaderScorer().compound(TEXTS)
    assert got.shape == (len(TEXTS), 6)
    assert np.allclose(got[:, 3], compound)
    assert np.allclose(got[:, 4], compound**2) and np.allclose(got[:, 5], np.abs(compound))
    assert np.allclose(got[:, :3].sum(axis=1), 1.0, atol=0.01)  # neg + neu + pos


def test_a_fitted_stack_learns_a_rule_the_model_alone_misses():
    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 3, n)
    probs = np.full((n, 3), 1 / 3)  # a model that knows nothing
    compound = np.array([-0.8, 0.0, 0.8])[y] + rng.normal(0, 0.1, n)  # VADER's compound tells the class
    vader = np.stack([np.zeros(n), np.ones(n), np.zeros(n), compound, compound**2, np.abs(compound)], axis=1)
    stack = fit_stack(stack_inputs(probs, vader), y, np.ones(n), LABELS)
    assert (stack.proba(stack_inputs(probs, vader)).argmax(1) == y).mean() > 0.97


def test_row_weights_make_every_source_count_the_same():
    val = [Example(f"vader-tweets*3:{i}#{c}", "t", "neutral") for i in range(10) for c in range(3)]
    val += [Example(f"crowdflower-tweets:{i}", "t", "neutral") for i in range(60)]
    w = source_weights(val, "vader-tweets*3,crowdflower-tweets")
    assert w[:30].sum() == pytest.approx(w[30:].sum()) == pytest.approx(len(val) / 2)
    assert np.array_equal(source_weights(val[:30], "vader-tweets"), np.ones(30))


def test_the_stack_travels_in_the_artifact_and_changes_its_version(tmp_path):
    scorer = tiny_rnn()
    plain = scorer.save(tmp_path / "plain")
    examples = [Example(f"x{i}", t, LABELS[i % 3]) for i, t in enumerate(TEXTS * 4)]
    about = add_vader_stack(scorer, examples, "vader-tweets", say=lambda _: None)
    stacked = scorer.save(tmp_path / "stacked", stack_about=about)
    assert STACK_FILE in stacked["files"] and STACK_FILE not in plain["files"]
    assert stacked["version"] != plain["version"]
    loaded = factory.load(tmp_path / "stacked", device="cpu")
    assert loaded.stack is not None
    assert np.allclose(loaded.predict_proba(TEXTS), scorer.predict_proba(TEXTS), atol=1e-6)
    # what predict_proba gives is the layer over the network's own output and VADER's scores
    expected = loaded.stack.proba(stack_inputs(loaded.model_proba(TEXTS), VaderFeatures()(TEXTS)))
    assert np.allclose(loaded.predict_proba(TEXTS), expected)
    assert not np.allclose(loaded.predict_proba(TEXTS), loaded.model_proba(TEXTS))
    # saving without a stack into the same directory leaves no stale stack.json behind
    scorer.stack = None
    assert STACK_FILE not in scorer.save(tmp_path / "stacked")["files"]


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda raw: raw.update(weight=[[0.0] * 9] * 2), "do not fit 3 labels and 9 inputs"),
        (lambda raw: raw.update(features=raw["features"][::-1]), "are not this model's"),
        (lambda raw: raw.update(bias=[0.0, "x", 1.0]), "unusable stack.json"),
        (lambda raw: raw.pop("weight"), "unusable stack.json"),
    ],
)
def test_a_stack_that_does_not_fit_the_model_is_refused(tmp_path, edit, match):
    weight = np.zeros((3, len(feature_names(LABELS))))
    raw = Stack(LABELS, weight, np.zeros(3)).to_json()
    edit(raw)
    (tmp_path / STACK_FILE).write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match=match):
        Stack.load(tmp_path, LABELS)


def test_non_finite_stack_weights_are_refused():
    weight = np.zeros((3, len(feature_names(LABELS))))
    weight[1, 2] = np.nan
    with pytest.raises(ArtifactError, match="not all finite"):
        Stack(LABELS, weight, np.zeros(3))
