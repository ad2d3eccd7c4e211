"""The training entry point SageMaker and the local tuner run, and spot-style resume from a checkpoint."""

import json

import pytest

from model_training.hparams import HParams
from model_training.sm_entry import find_data, main, parse_hyperparameters
from tests.helpers import toy_examples


def test_hyperparameters_arrive_as_flags():
    argv = ["--lr", "0.002", "--hidden-size=64", "--model", "rnn", "--sagemaker_program", "sm_train.py"]
    assert parse_hyperparameters(argv) == {"lr": "0.002", "hidden_size": "64", "model": "rnn"}
    with pytest.raises(SystemExit, match="has no value"):
        parse_hyperparameters(["--lr"])
    with pytest.raises(SystemExit, match="unexpected argument"):
        parse_hyperparameters(["lr", "1"])


def test_channel_must_hold_one_data_file(tmp_path):
    with pytest.raises(SystemExit, match="exactly one"):
        find_data(tmp_path)
    (tmp_path / "a.jsonl").write_text("")
    assert find_data(tmp_path) == tmp_path / "a.jsonl"
    (tmp_path / "b.csv").write_text("")
    with pytest.raises(SystemExit, match="exactly one"):
        find_data(tmp_path)


def write_channel(directory, n=150):
    directory.mkdir(parents=True)
    with (directory / "tweets.jsonl").open("w") as fh:
        for ex in toy_examples(n):
            fh.write(json.dumps({"id": ex.id, "text": ex.text, "label": ex.label}) + "\n")


def test_entry_point_trains_into_sm_model_dir(tmp_path, monkeypatch, capsys):
    write_channel(tmp_path / "train")
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(tmp_path / "train"))
    monkeypatch.setenv("SM_OUTPUT_DATA_DIR", str(tmp_path / "output"))
    manifest = main(["--model", "rnn", "--epochs", "2", "--hidden_size", "16", "--batch_size", "16", "--lr", "0.005"])
    from tone.scoring import artifacts

    assert artifacts.verify(tmp_path / "model")["version"] == manifest["version"]
    assert manifest["params"]["hidden_size"] == "16"
    out = capsys.readouterr().out
    # The lines the tuning spec's regex reads: one per epoch, then the best.
    assert "epoch=1 " in out and "epoch=2 " in out and "best_val_macro_f1=" in out
    assert json.loads((tmp_path / "output" / "metrics.json").read_text())["test_macro_f1"] >= 0


def test_resume_from_checkpoint_continues_the_same_run(tmp_path):
    from model_training.train import CHECKPOINT_FILE, train_rnn

    examples = toy_examples(150)
    train, val = examples[:120], examples[120:]
    hp = HParams(model="rnn", epochs=3, hidden_size=8, batch_size=16, lr=0.005, patience=0)
    lines: list[str] = []
    straight = train_rnn(train, val, hp, log=lines.append)

    class Interrupted(Exception):
        pass

    def die_after_epoch_2(line):
        if line.startswith("epoch=2 "):
            raise Interrupted  # a spot reclaim during epoch 2: only the epoch-1 checkpoint exists

    ckpt = tmp_path / "ckpt"
    with pytest.raises(Interrupted):
        train_rnn(train, val, hp, log=die_after_epoch_2, checkpoint_dir=ckpt)
    assert (ckpt / CHECKPOINT_FILE).is_file()
    resumed_log: list[str] = []
    resumed = train_rnn(train, val, hp, log=resumed_log.append, checkpoint_dir=ckpt)
    assert any("resumed from checkpoint" in line and "after epoch 1" in line for line in resumed_log)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert [round(r["train_loss"], 6) for r in resumed.history] == [round(r["train_loss"], 6) for r in straight.history]
