"""`tone bench scorers` on a tiny transformer: one row per backend, same tweets, accuracy next to speed."""

from benchmarks import scorers as bench
from tests.helpers import tiny_transformer_artifact, toy_examples, write_jsonl
from tone.settings import Settings


def test_one_row_per_backend_with_accuracy(tmp_path, monkeypatch):
    artifact = tiny_transformer_artifact(tmp_path / "art")
    data = write_jsonl(tmp_path / "toy.jsonl", toy_examples(120))
    monkeypatch.setattr(bench, "bench_texts", lambda settings, n: [e.text for e in toy_examples(n, seed=1)])
    settings = Settings(transformer_model=str(artifact), data_dir=tmp_path, device="cpu")
    result = bench.run_scorer_bench(
        settings, n=40, scorers=["transformer"], repeat=1, accuracy_data=str(data), say=lambda _: None
    )
    rows = {r["name"]: r for r in result["rows"]}
    assert list(rows) == [
        "transformer/torch",
        "transformer/onnx-fp32",
        "transformer/onnx-int8",
        "language detector",
        "hf-pipeline-per-tweet",
        "hf-pipeline-batch64",
    ]
    assert result["accuracy_texts"] > 0
    for name in ("transformer/torch", "transformer/onnx-fp32", "transformer/onnx-int8"):
        assert rows[name]["tweets_per_s"] > 0 and 0 <= rows[name]["macro_f1"] <= 1
        assert rows[name]["vs_pipeline_per_tweet"] > 0
    assert rows["transformer/onnx-fp32"]["agreement_vs_torch"] == 1.0  # fp32 graph == torch on every label
    assert rows["transformer/onnx-fp32"]["macro_f1"] == rows["transformer/torch"]["macro_f1"]
    assert rows["transformer/onnx-int8"]["int8_guard"] == "accepted"
    assert rows["transformer/torch"]["gflops"] > 0 and result["cpu_matmul_gflops"] > 0
    assert "macro_f1" not in rows["hf-pipeline-per-tweet"]
    assert rows["language detector"]["tweets_per_s"] > 0 and "vs_pipeline_per_tweet" not in rows["language detector"]
