"""The ONNX export and its accuracy guard, on a tiny RoBERTa (seconds)."""

import json

import pytest

from model_training import onnx_export
from model_training.onnx_export import add_onnx, export_onnx, int8_verdict
from tests.helpers import tiny_transformer_artifact, toy_examples, write_jsonl
from tone.errors import ArtifactError
from tone.scoring import artifacts, factory
from tone.scoring.transformer import TransformerScorer
from tone.settings import Settings


@pytest.fixture(scope="module")
def torch_artifact(tmp_path_factory):
    return tiny_transformer_artifact(tmp_path_factory.mktemp("plain") / "art", onnx=False)


@pytest.mark.parametrize(
    ("drop", "agreement", "accepted", "why"),
    [
        (0.0, 1.0, True, "agreement 100.00%"),
        (0.005, 0.99, True, "drop 0.0050 <= 0.005"),
        (0.0051, 1.0, False, "macro-F1 fell by 0.0051"),
        (-0.01, 0.9899, False, "98.99% of validation labels agree"),
    ],
)
def test_int8_guard_thresholds(drop, agreement, accepted, why):
    ok, reason = int8_verdict(drop, agreement)
    assert ok is accepted
    assert why in reason


def test_a_refused_int8_graph_is_not_kept_and_auto_runs_fp32(torch_artifact, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "INT8_MIN_AGREEMENT", 1.01)  # no int8 graph can pass: the refusal path
    scorer = factory.load(torch_artifact, device="cpu")
    section = export_onnx(scorer, tmp_path / "art", toy_examples(30), say=lambda _: None)
    assert section["int8"]["accepted"] is False
    assert "agree with fp32 (< 101%)" in section["int8"]["reason"]
    assert 0 <= section["int8"]["label_agreement"] <= 1 and "macro_f1_drop" in section["int8"]
    assert not (tmp_path / "art" / "onnx" / "model.int8.onnx").exists()
    scorer.save(tmp_path / "art", onnx=section)
    assert factory.load(tmp_path / "art", device="cpu").backend == "onnx-fp32"


def test_an_fp32_graph_that_differs_from_torch_is_refused(torch_artifact, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "FP32_TOLERANCE", -1.0)
    scorer = factory.load(torch_artifact, device="cpu")
    with pytest.raises(ArtifactError, match="fp32 ONNX graph differs from the torch model"):
        export_onnx(scorer, tmp_path / "art", (), say=lambda _: None)
    assert not (tmp_path / "art" / "onnx").exists()


def test_without_validation_data_int8_is_not_tried(torch_artifact, tmp_path):
    section = export_onnx(factory.load(torch_artifact, device="cpu"), tmp_path / "a", (), say=lambda _: None)
    assert section["int8"] == {"accepted": False, "reason": "not tried: no labelled validation data to guard it"}
    assert section["fp32"]["max_abs_diff"] <= onnx_export.FP32_TOLERANCE


def test_add_onnx_keeps_weights_and_metrics_under_a_new_version(torch_artifact, tmp_path):
    data = write_jsonl(tmp_path / "toy.jsonl", toy_examples(90))
    before = artifacts.verify(torch_artifact)
    after = add_onnx(
        torch_artifact, tmp_path / "out", settings=Settings(data_dir=tmp_path), data=str(data), say=lambda _: None
    )
    assert after["version"] != before["version"]
    assert after["files"]["model.safetensors"] == before["files"]["model.safetensors"]
    assert after["metrics"] == before.get("metrics") and after["onnx"]["int8"]["validation_texts"] > 0
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["onnx"]["fp32"]["file"] == "onnx/model.onnx"
    assert factory.load(tmp_path / "out", device="cpu").backend.startswith("onnx-")
    with pytest.raises(ArtifactError, match="not empty"):
        add_onnx(
            torch_artifact, tmp_path / "out", settings=Settings(data_dir=tmp_path), data=str(data), say=lambda _: None
        )


def test_training_a_transformer_saves_its_export(tmp_path):
    from model_training.hparams import HParams
    from model_training.workflow import train_and_save
    from tests.helpers import tiny_roberta_dir

    data = write_jsonl(tmp_path / "toy.jsonl", toy_examples(150))
    manifest = train_and_save(
        Settings(data_dir=tmp_path),
        model="transformer",
        out=tmp_path / "model",
        data=str(data),
        hp=HParams(model="transformer", epochs=1, batch_size=16, lr=1e-3, patience=0),
        base_model=str(tiny_roberta_dir(tmp_path / "base")),
        say=lambda _: None,
    )
    assert manifest["onnx"]["fp32"]["file"] in manifest["files"]
    assert isinstance(factory.load(tmp_path / "model", device="cpu", backend="torch"), TransformerScorer)
    assert factory.load(tmp_path / "model", device="cpu").backend.startswith("onnx-")
