"""`tone train`'s RNN ends with the VADER stack unless told not to, and its test score is the stacked model's."""

import json

import pytest

from model_training.hparams import HParams
from model_training.workflow import train_and_save
from tone.scoring import factory
from tone.scoring.stack import STACK_FILE
from tone.settings import Settings

WORDS = {"negative": "awful terrible hate", "neutral": "the bus at noon", "positive": "lovely great happy"}


@pytest.mark.parametrize("stack", [1, 0])
def test_the_rnn_artifact_carries_the_stack_only_when_asked(tmp_path, stack):
    data = tmp_path / "tiny.jsonl"
    rows = [{"text": f"{WORDS[label]} {i}", "label": label} for i in range(60) for label in WORDS]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    hp = HParams(model="rnn", epochs=1, patience=0, hidden_size=8, max_length=16, vader_stack=stack)
    said = []
    manifest = train_and_save(Settings(data_dir=tmp_path), out=tmp_path / "m", data=str(data), hp=hp, say=said.append)
    assert (STACK_FILE in manifest["files"]) == bool(stack)
    assert ("test_macro_f1_without_stack" in manifest["metrics"]) == bool(stack)
    assert any(line.startswith("vader stack: fitted on") for line in said) == bool(stack)
    loaded = factory.load(tmp_path / "m", device="cpu")
    assert (loaded.stack is not None) == bool(stack)
