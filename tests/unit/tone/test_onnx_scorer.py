"""The ONNX Runtime transformer backend and token-budget batching, on a tiny RoBERTa exported here."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import tiny_transformer_artifact
from tone import envvars as env
from tone.errors import ArtifactError, ConfigError
from tone.scoring import artifacts, factory
from tone.scoring.base import pad_rows, token_budget_batches
from tone.scoring.onnx_scorer import OnnxTransformerScorer
from tone.scoring.transformer import TransformerScorer
from tone.scoring.transformer_common import choose_backend, onnx_precision

TEXTS = ["I love it", "worst. day. ever. @someone https://t.co/x", "", "😀" * 200, "ok", "meh " * 40, "great"]


@pytest.fixture(scope="module")
def onnx_artifact(tmp_path_factory):
    return tiny_transformer_artifact(tmp_path_factory.mktemp("onnx") / "art")


@given(
    lengths=st.lists(st.integers(0, 300), max_size=200),
    budget=st.integers(1, 2000),
    rows=st.integers(1, 70),
)
def test_token_budget_batches_cover_every_text_once_within_the_budget(lengths, budget, rows):
    batches = list(token_budget_batches(lengths, budget, rows))
    seen = np.concatenate(batches) if batches else np.array([], dtype=int)
    assert sorted(seen.tolist()) == list(range(len(lengths)))
    for batch in batches:
        longest = max(1, *(lengths[i] for i in batch))
        assert len(batch) <= rows
        assert len(batch) == 1 or len(batch) * longest <= budget  # a text over the budget goes alone
    # longest first: a later batch never holds a longer text than an earlier one
    firsts = [lengths[b[0]] for b in batches]
    assert firsts == sorted(firsts, reverse=True)


def test_token_budget_gives_short_texts_bigger_batches():
    batches = list(token_budget_batches([100] * 4 + [10] * 40, 200, 64))
    assert [len(b) for b in batches] == [2, 2, 20, 20]
    with pytest.raises(ValueError, match="max_tokens"):
        list(token_budget_batches([1], 0, 4))


def test_pad_rows_pads_with_the_pad_id_and_masks():
    ids, mask = pad_rows([[5, 6, 7], [8]], pad_id=1)
    assert ids.tolist() == [[5, 6, 7], [8, 1, 1]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_auto_backend_runs_the_export_on_the_cpu_and_matches_torch(onnx_artifact):
    manifest = artifacts.verify(onnx_artifact)
    assert set(manifest["files"]) >= {"onnx/model.onnx", "onnx/model.int8.onnx"}  # both checksummed
    fp32 = factory.load(onnx_artifact, device="cpu", onnx_precision="fp32")
    torch_scorer = factory.load(onnx_artifact, device="cpu", backend="torch")
    assert isinstance(fp32, OnnxTransformerScorer) and fp32.backend == "onnx-fp32"
    assert isinstance(torch_scorer, TransformerScorer)
    assert fp32.version == torch_scorer.version == manifest["version"]
    assert np.abs(fp32.predict_proba(TEXTS) - torch_scorer.predict_proba(TEXTS)).max() < 1e-4
    # the guard accepted int8 on the toy data, so auto takes it
    assert factory.load(onnx_artifact, device="cpu").backend == "onnx-int8"


def test_onnx_batching_keeps_input_order(onnx_artifact):
    scorer = factory.load(onnx_artifact, device="cpu", onnx_precision="fp32", batch_size=2, token_budget=64)
    together = scorer.predict_proba(TEXTS)
    one_by_one = np.concatenate([scorer.predict_proba([t]) for t in TEXTS])
    assert np.allclose(together, one_by_one, atol=1e-5)
    assert np.allclose(together.sum(axis=1), 1, atol=1e-5)
    perm = [3, 0, 6, 1, 5, 2, 4]
    assert np.allclose(scorer.predict_proba([TEXTS[i] for i in perm]), together[perm], atol=1e-5)
    assert scorer.predict_proba([]).shape == (0, 3)


def test_a_changed_onnx_graph_fails_the_checksum(onnx_artifact, tmp_path):
    import shutil

    copy = shutil.copytree(onnx_artifact, tmp_path / "copy")
    graph = copy / "onnx" / "model.onnx"
    graph.write_bytes(graph.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ArtifactError, match=r"checksum on onnx/model.onnx"):
        factory.load(copy, device="cpu")


def test_backend_choice_and_its_errors(onnx_artifact):
    with_onnx = artifacts.verify(onnx_artifact)
    without = {k: v for k, v in with_onnx.items() if k != "onnx"}
    assert choose_backend(with_onnx, "auto", "cpu") == "onnx"
    assert choose_backend(with_onnx, "auto", "cuda") == "torch"
    assert choose_backend(without, "auto", "cpu") == "torch"
    assert choose_backend(with_onnx, "torch", "cpu") == "torch"
    with pytest.raises(
        ConfigError, match=f"{env.TRANSFORMER_BACKEND}=onnx but artifact .* has no ONNX export.*export-onnx"
    ):
        choose_backend(without, "onnx", "cpu")
    with pytest.raises(ConfigError, match="a plain Hugging Face model has no ONNX export"):
        choose_backend(None, "onnx", "cpu")
    with pytest.raises(ConfigError, match=f"runs on the CPU.*{env.DEVICE}=cuda"):
        choose_backend(with_onnx, "onnx", "cuda")


def test_int8_refused_by_the_guard_is_never_picked(onnx_artifact):
    manifest = artifacts.verify(onnx_artifact)
    refused = {**manifest, "onnx": {**manifest["onnx"], "int8": {"accepted": False, "reason": "97.10% agree"}}}
    assert onnx_precision(refused, "auto") == "fp32"
    assert onnx_precision(manifest, "auto") == "int8"
    assert onnx_precision(manifest, "fp32") == "fp32"
    with pytest.raises(ConfigError, match=rf"{env.ONNX_PRECISION}=int8 but .* no accepted int8 graph \(97.10% agree\)"):
        onnx_precision(refused, "int8")
    assert onnx_precision({"version": "x"}, "auto") is None


def test_the_onnx_backend_never_imports_torch(onnx_artifact):
    code = (
        "import sys; from tone.scoring import factory\n"
        f"s = factory.load({str(onnx_artifact)!r}, device='cpu', backend='onnx')\n"
        "print(type(s).__name__, s.predict(['I love it'])[0] in s.labels, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["OnnxTransformerScorer", "True", "False"]
