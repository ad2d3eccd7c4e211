"""`tone bench gpu`: a roberta-base-sized classifier at real tweet lengths: tweets/s and the share of the bf16 bound.

Random weights (a ``RobertaConfig``): this measures speed only, and needs no hub. Real tweets are tokenised with the
packaged MiniLM's WordPiece vocabulary (RoBERTa's BPE is not on disk offline; English tweets come out at similar
lengths). Rows, all on the same tweets and the same model object:

- ``scorer bf16``: the project's TransformerScorer (length-sorted, token-budget batches, bf16 autocast);
- ``scorer bf16 + torch.compile``: the same with ``torch.compile(dynamic=True)`` (``--compile``);
- ``scorer fp32``: no autocast;
- Hugging Face ``pipeline()`` on a bf16 copy of the model, per tweet and with ``batch_size=64``.

FLOPs count only real tokens (``benchmarks.scorers.tweet_flops``); the share is achieved FLOP/s over the device's
dense bf16 peak.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tone.settings import Settings

# Dense bf16 tensor-core peak, TFLOP/s, by a substring of torch.cuda.get_device_name() (vendor datasheets).
BF16_PEAK_TFLOPS: dict[str, float] = {
    "H200": 989.4,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 989.4,  # SXM
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
}
ROBERTA_BASE: dict[str, Any] = {
    "vocab_size": 50265,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "pad_token_id": 1,
}


def peak_tflops(device_name: str) -> float | None:
    """The bf16 peak of a known GPU, or None."""
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in device_name), None)


def _pipeline_copy(model: Any, tokenizer: Any, device: Any) -> Any:
    """``pipeline("text-classification")`` on a copy of ``model``, in bf16 on a GPU: what a Hugging Face user runs."""
    import copy

    import torch
    from transformers import pipeline

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    twin = copy.deepcopy(model).to(device=device, dtype=dtype).eval()
    return pipeline(
        "text-classification",
        model=twin,
        tokenizer=tokenizer,
        top_k=None,
        device=device,
        truncation=True,
        max_length=128,
    )


def run_gpu_bench(
    settings: Settings,
    *,
    n: int = 20000,
    repeat: int = 3,
    compile_model: bool = True,
    pipeline_tweets: int = 2000,
    config_overrides: dict[str, Any] | None = None,
    peak: float | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Time each row on the same ``n`` tweets (the per-tweet pipeline on the first ``pipeline_tweets``)."""
    import torch
    from transformers import AutoTokenizer, RobertaConfig, RobertaForSequenceClassification

    from benchmarks.scorers import _timed, bench_texts, tweet_flops
    from tone.labels import TONE_LABELS
    from tone.scoring.rnn import minilm_dir
    from tone.scoring.transformer import TransformerScorer
    from tone.scoring.transformer_common import encode

    torch.manual_seed(0)
    config: Any = RobertaConfig(**{**ROBERTA_BASE, **(config_overrides or {}), "num_labels": len(TONE_LABELS)})
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    model: Any = RobertaForSequenceClassification(config)
    model.eval()
    texts = bench_texts(settings, n)
    lengths = [len(ids) for ids in encode(tokenizer, texts, 128)]
    flops = tweet_flops(lengths, config)
    options: dict[str, Any] = {"device": settings.device, "threads": settings.torch_threads}
    scorer = TransformerScorer(
        model,
        tokenizer,
        "roberta-base-random",
        labels=TONE_LABELS,
        batch_size=settings.scorer_batch_size or None,
        token_budget=settings.scorer_token_budget or None,
        **options,
    )
    device = scorer.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    peak = peak or (peak_tflops(name) if device.type == "cuda" else None)
    rows: list[dict[str, Any]] = []

    def row(label: str, fn: Callable[[], object], count: int, work: float) -> None:
        fn()  # warm-up: kernels chosen, compiled graphs built
        if device.type == "cuda":
            torch.cuda.synchronize()
        say(f"running {label} on {count} tweets")
        seconds = _timed(fn, repeat)
        tflops = work / seconds / 1e12
        rows.append(
            {
                "name": label,
                "tweets": count,
                "tweets_per_s": count / seconds,
                "tflops": tflops,
                "share_of_bf16_peak": tflops / peak if peak else None,
            }
        )

    row("scorer bf16" if device.type == "cuda" else "scorer", lambda: scorer.predict_proba(texts), n, flops)
    if device.type == "cuda":
        scorer.mixed_precision = False
        row("scorer fp32", lambda: scorer.predict_proba(texts), n, flops)
        scorer.mixed_precision = True
    if compile_model:
        eager = scorer.model
        scorer.model = torch.compile(eager, dynamic=True)
        t0 = time.perf_counter()
        scorer.predict_proba(texts[:256])
        say(f"torch.compile warm-up {time.perf_counter() - t0:.1f}s")
        row("scorer + torch.compile", lambda: scorer.predict_proba(texts), n, flops)
        scorer.model = eager
    pipe = _pipeline_copy(model, tokenizer, device)
    few = texts[:pipeline_tweets]
    few_flops = tweet_flops(lengths[:pipeline_tweets], config)
    row("HF pipeline per tweet", lambda: [pipe(t) for t in few], len(few), few_flops)
    row("HF pipeline batch_size=64", lambda: pipe(texts, batch_size=64), n, flops)
    return {
        "device": name,
        "model": f"RobertaForSequenceClassification, {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
        "random weights",
        "tweets": n,
        "mean_tokens": sum(lengths) / len(lengths),
        "bf16_peak_tflops": peak,
        "repeat": repeat,
        "rows": rows,
    }
