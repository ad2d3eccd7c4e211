"""`tone bench gpu`'s arithmetic, and its rows on a tiny RoBERTa on the CPU (the GPU run itself needs a GPU)."""

from types import SimpleNamespace

import pytest

from benchmarks import gpu, scorers
from tests.helpers import toy_examples
from tone.settings import Settings


@pytest.mark.parametrize(
    ("name", "peak"),
    [("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H200", 989.4), ("Quadro K600", None)],
)
def test_bf16_peak_by_device_name(name, peak):
    assert gpu.peak_tflops(name) == peak


def test_flops_count_real_tokens_only():
    config = SimpleNamespace(hidden_size=4, intermediate_size=8, num_hidden_layers=2)
    per_token = 2 * 2 * (4 * 16 + 2 * 4 * 8)  # 2 FLOPs per MAC, 2 layers of Q, K, V, O and the two FFN matmuls
    assert scorers.tweet_flops([3], config) == per_token * 3 + 2 * 4 * 9 * 4
    assert scorers.tweet_flops([3, 5], config) == scorers.tweet_flops([3], config) + scorers.tweet_flops([5], config)


def test_rows_on_a_tiny_model(monkeypatch):
    monkeypatch.setattr(scorers, "bench_texts", lambda settings, n: [e.text for e in toy_examples(n)])
    result = gpu.run_gpu_bench(
        Settings(device="cpu"),
        n=24,
        repeat=1,
        compile_model=False,
        pipeline_tweets=6,
        config_overrides={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64},
        say=lambda _: None,
    )
    assert [r["name"] for r in result["rows"]] == ["scorer", "HF pipeline per tweet", "HF pipeline batch_size=64"]
    assert all(r["tweets_per_s"] > 0 and r["tflops"] > 0 and r["share_of_bf16_peak"] is None for r in result["rows"])
    assert result["rows"][1]["tweets"] == 6 and result["mean_tokens"] > 3
