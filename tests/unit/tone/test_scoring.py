"""Scorers, artifacts and training on tiny models built here (no hub, seconds each)."""

import json
import tarfile

import numpy as np
import pytest
import torch

from model_training.hparams import HParams
from model_training.train import train_rnn, train_transformer
from tests.helpers import tiny_rnn, tiny_roberta_dir, toy_examples
from tone.errors import ArtifactError
from tone.scoring import artifacts, factory
from tone.scoring.rnn import FastBiGRU
from tone.scoring.torch_utils import pad_batch
from tone.scoring.transformer import TransformerScorer

TEXTS = [
    "I love it",
    "worst. day. ever. @someone https://t.co/x",
    "ok",
    "the bus is late again and again " * 5,
    "great",
    "😀",
    "meh…",
    "hate hate hate",
]


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory):
    return tiny_roberta_dir(tmp_path_factory.mktemp("roberta"))


@pytest.mark.parametrize("lexicon", [False, True])
def test_fast_gru_matches_the_module(lexicon):
    scorer = tiny_rnn(hidden=12, lexicon=lexicon)
    ids = scorer.encode(TEXTS)
    batch, lengths = pad_batch(ids, 0)
    with torch.inference_mode():
        reference = scorer.model(batch, lengths)
        fast = FastBiGRU(scorer.model)(batch, lengths)
    assert torch.allclose(reference, fast, atol=1e-5)


@pytest.mark.parametrize("kind", ["rnn", "transformer"])
def test_batching_and_sorting_keep_input_order(kind, roberta_dir):
    scorer = tiny_rnn() if kind == "rnn" else TransformerScorer.from_pretrained(roberta_dir, device="cpu", batch_size=3)
    together = scorer.predict_proba(TEXTS)
    one_by_one = np.concatenate([scorer.predict_proba([t]) for t in TEXTS])
    assert together.shape == (len(TEXTS), 3)
    assert np.allclose(together, one_by_one, atol=1e-5)
    assert np.allclose(together.sum(axis=1), 1, atol=1e-5)
    # a different order gives the same rows, permuted
    perm = [3, 0, 7, 1, 6, 2, 5, 4]
    assert np.allclose(scorer.predict_proba([TEXTS[i] for i in perm]), together[perm], atol=1e-5)


@pytest.mark.parametrize("kind", ["rnn", "rnn+lexicon", "transformer"])
def test_save_load_gives_identical_probabilities(kind, roberta_dir, tmp_path):
    if kind == "transformer":
        scorer = TransformerScorer.from_pretrained(roberta_dir, device="cpu")
    else:
        scorer = tiny_rnn(lexicon=kind == "rnn+lexicon")
    kind = kind.removesuffix("+lexicon")
    manifest = scorer.save(tmp_path / "art", metrics={"test_macro_f1": 0.5}, params={"lr": "0.1"})
    assert manifest["kind"] == kind and manifest["version"].startswith(f"{kind}-")
    assert all(len(h) == 64 for h in manifest["files"].values())
    loaded = factory.load(tmp_path / "art", device="cpu")
    assert type(loaded) is type(scorer)
    assert loaded.version == manifest["version"]
    # A run-time setting, not saved. Identical numbers need the same batches: the last bit of a float32 matmul may
    # depend on its shape (batches of 7 and of 256 differed by 3e-8 on an AMD EPYC).
    loaded.batch_size = scorer.batch_size
    assert np.array_equal(loaded.predict_proba(TEXTS), scorer.predict_proba(TEXTS))
    # the same weights saved again get the same content-derived version
    assert scorer.save(tmp_path / "again")["version"] == manifest["version"]


def test_transformer_artifact_is_a_plain_hf_directory(roberta_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    TransformerScorer.from_pretrained(roberta_dir, device="cpu").save(tmp_path / "art")
    model = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "art"))
    assert model.config.model_type == "roberta"


@pytest.mark.parametrize("damage", ["flip-byte", "drop-file", "add-file", "edit-version", "bad-json", "edit-languages"])
def test_tampered_artifact_is_refused(damage, tmp_path):
    scorer = tiny_rnn()
    scorer.save(tmp_path / "art")
    weights = tmp_path / "art" / "model.safetensors"
    if damage == "flip-byte":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
        match = "failed its checksum on model.safetensors"
    elif damage == "drop-file":
        (tmp_path / "art" / "tokenizer.json").unlink()
        match = "missing tokenizer.json"
    elif damage == "add-file":
        (tmp_path / "art" / "evil.pkl").write_bytes(b"x")
        match = "does not list: evil.pkl"
    elif damage == "edit-version":
        manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
        manifest["version"] = "rnn-000000000000"
        (tmp_path / "art" / "manifest.json").write_text(json.dumps(manifest))
        match = "does not match its files"
    elif damage == "edit-languages":  # a manifest edited to claim a language its model was not trained on
        manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
        manifest["languages"] = ["en", "de"]
        (tmp_path / "art" / "manifest.json").write_text(json.dumps(manifest))
        match = "does not match its files"
    else:
        (tmp_path / "art" / "manifest.json").write_text("{not json")
        match = "not valid JSON"
    with pytest.raises(ArtifactError, match=match):
        factory.load(tmp_path / "art")


def test_label_map_is_carried_by_the_artifact(roberta_dir, tmp_path):
    emotion_dir = tiny_roberta_dir(tmp_path / "emotion", labels=("anger", "joy"))
    scorer = TransformerScorer.from_pretrained(emotion_dir, device="cpu")
    scorer.save(tmp_path / "art")
    loaded = factory.load(tmp_path / "art", device="cpu")
    assert loaded.labels == ("anger", "joy")
    results = loaded.score(["so happy", "so mad"])
    assert all(r.label in ("anger", "joy") and set(r.probs) == {"anger", "joy"} for r in results)
    assert all(r.polarity == 0.0 for r in results)  # no positive/negative classes: no polarity

    rnn = tiny_rnn(labels=("sad", "calm", "glad", "wild"))
    rnn.save(tmp_path / "rnn4")
    assert factory.load(tmp_path / "rnn4").predict_proba(["x"]).shape == (1, 4)


def test_model_tar_round_trip(tmp_path):
    scorer = tiny_rnn()
    scorer.save(tmp_path / "art")
    archive = artifacts.pack_model_tar(tmp_path / "art", tmp_path / "model.tar.gz")
    with tarfile.open(archive) as tar:
        assert "manifest.json" in tar.getnames() and "model.safetensors" in tar.getnames()
    loaded = factory.load(archive)
    loaded.batch_size = scorer.batch_size  # a run-time setting, not saved: identical numbers need the same batches
    assert np.array_equal(loaded.predict_proba(TEXTS), scorer.predict_proba(TEXTS))


def _tar_with(tmp_path, *members):
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, None if data is None else __import__("io").BytesIO(data))
    return path


def _file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


@pytest.mark.parametrize(
    ("member", "match"),
    [
        (_file("/etc/evil"), "absolute path"),
        (_file("../evil"), "'..'"),
        (_file("a/../../evil"), "'..'"),
        (_link("link", "/etc/passwd"), "escapes the target"),
        (_link("link", "../../outside"), "escapes the target"),
        (_link("hard", "/etc/passwd", tarfile.LNKTYPE), "escapes the target"),
    ],
)
def test_path_traversing_tar_is_refused(tmp_path, member, match):
    archive = _tar_with(tmp_path, _file("manifest.json", b"{}"), member)
    target = tmp_path / "out"
    with pytest.raises(ArtifactError, match=match):
        artifacts.unpack_model_tar(archive, target)
    assert not target.exists()  # nothing was written


def test_device_member_is_refused(tmp_path):
    info = tarfile.TarInfo("dev")
    info.type = tarfile.CHRTYPE
    with pytest.raises(ArtifactError, match="special file"):
        artifacts.unpack_model_tar(_tar_with(tmp_path, (info, None)), tmp_path / "out")


def test_rnn_training_loss_goes_down_and_learns(capsys):
    examples = toy_examples(150)
    base = tiny_rnn(hidden=16)
    embeddings = torch.randn(base.tokenizer.get_vocab_size(), 16)
    from tone.scoring.rnn import minilm_dir

    hp = HParams(model="rnn", epochs=15, batch_size=16, lr=3e-2, hidden_size=16, dropout=0.0, patience=0)
    result = train_rnn(
        examples[:120], examples[120:], hp, embeddings=embeddings, tokenizer_path=minilm_dir() / "tokenizer.json"
    )
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0] * 0.7
    out = capsys.readouterr().out
    assert "val_macro_f1=" in out and "epoch=15 " in out
    assert result.history[result.best_epoch - 1]["val_macro_f1"] >= 0.9


def test_transformer_fine_tune_loss_goes_down(roberta_dir):
    examples = toy_examples(90)
    hp = HParams(model="transformer", epochs=3, batch_size=8, lr=3e-3, patience=0)
    result = train_transformer(examples[:72], examples[72:], hp, base_model=roberta_dir)
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0]
    assert result.scorer.labels == ("negative", "neutral", "positive")


def test_distillation_uses_teacher_soft_labels():
    from model_training.train import _with_teacher
    from tone.scoring.vader import VaderScorer

    labelled = toy_examples(6)
    from model_training.hparams import HParams

    texts, targets, weights = _with_teacher(
        labelled,
        ("negative", "neutral", "positive"),
        VaderScorer(),
        ["I love it", "I hate it"],
        HParams(distill_weight=0.3),
    )
    assert len(texts) == 8
    assert targets[:6].max(axis=1).tolist() == [1.0] * 6
    assert targets[6].argmax() == 2 and targets[7].argmax() == 0  # VADER's view of the extra texts
    assert weights.tolist() == pytest.approx([1.0] * 6 + [0.3] * 2)


def test_sample_weights_balance_classes_and_follow_confidence():
    from model_training.hparams import HParams
    from model_training.train import sample_weights
    from tone.datasets import Example

    rows = [Example(str(i), "t", "positive", 1.0) for i in range(6)] + [Example("n", "t", "negative", 0.5)] * 2
    assert sample_weights(rows, HParams()).tolist() == [1.0] * 8  # off by default
    balanced = sample_weights(rows, HParams(class_weight=1.0))
    assert balanced[6] / balanced[0] == pytest.approx(3.0)  # 6 positives vs 2 negatives
    assert balanced.mean() == pytest.approx(1.0)
    confident = sample_weights(rows, HParams(confidence_weight=1.0))
    assert confident[0] / confident[6] == pytest.approx(2.0)


def test_distilling_on_the_training_texts_blends_hard_and_soft_targets():
    from model_training.hparams import HParams
    from model_training.train import _with_teacher
    from tone.scoring.vader import VaderScorer

    labelled = toy_examples(6)
    texts = [e.text for e in labelled]
    out_texts, targets, weights = _with_teacher(
        labelled, ("negative", "neutral", "positive"), VaderScorer(), texts, HParams(distill_weight=0.25)
    )
    assert out_texts == texts  # one pass over the data, not two
    soft = VaderScorer().predict_proba(texts)
    hard = np.eye(3)[[("negative", "neutral", "positive").index(e.label) for e in labelled]]
    assert targets == pytest.approx(0.75 * hard + 0.25 * soft, abs=1e-6)
    assert weights.tolist() == [1.0] * 6


def test_an_artifact_says_which_languages_it_reads(tmp_path):
    scorer = tiny_rnn()
    manifest = scorer.save(tmp_path / "en")
    assert manifest["languages"] == ["en"]  # the default: this project's training data is English
    assert factory.load(tmp_path / "en").languages == ("en",)
    multi = tiny_rnn().save(tmp_path / "multi", languages=["de", "en", "es"])
    assert factory.load(tmp_path / "multi").languages == ("de", "en", "es")
    assert multi["version"] != manifest["version"]  # the same weights, other languages: another version
    # An artifact written before manifests recorded languages still verifies, and reads English.
    old = json.loads((tmp_path / "en" / "manifest.json").read_text())
    del old["languages"]
    old["version"] = artifacts.content_version("rnn", old["files"])
    (tmp_path / "en" / "manifest.json").write_text(json.dumps(old))
    assert factory.load(tmp_path / "en").languages == ("en",)


def test_routes_that_send_a_model_a_language_it_does_not_read_are_refused(tmp_path):
    from tone.errors import ConfigError
    from tone.language import Routes
    from tone.scoring.loader import check_routes
    from tone.settings import Settings

    tiny_rnn().save(tmp_path / "multi", languages=["de", "en"])
    settings = Settings(model_dir=tmp_path / "models")
    assert check_routes(Routes.parse("en=default,und=vader"), settings, "rnn") == []
    assert check_routes(Routes.parse(f"en=default,de={tmp_path / 'multi'}"), settings, "vader") == []
    with pytest.raises(ConfigError, match="sends de to rnn, which reads en only"):
        check_routes(Routes.parse("en=default,de=rnn"), settings, "rnn")
    with pytest.raises(ConfigError, match=r"sends \*, ja to vader"):
        check_routes(Routes.parse("en=default,*=vader,ja=vader"), settings, "rnn")
    with pytest.raises(ConfigError, match="sends es to"):
        check_routes(Routes.parse(f"es={tmp_path / 'multi'}"), settings, "rnn")
