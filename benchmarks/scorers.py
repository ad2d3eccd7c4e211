"""`tone bench scorers`: tweets/s of each scorer on the same tweets, in one run.

The references are Hugging Face ``pipeline("text-classification")`` with the same transformer, called per tweet
and with ``batch_size=64``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from tone.scoring.base import Scorer
from tone.scoring.kinds import MODEL_KINDS
from tone.settings import Settings

WARMUP = 32


def _timed(fn: Callable[[], object], repeat: int = 1) -> float:
    """Best of ``repeat`` wall-clock runs: the least disturbed by other load on a shared machine (as timeit does)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_texts(settings: Settings, n: int) -> list[str]:
    """``n`` real tweets, cycling the VADER-rated set (fetched on first use) in a fixed order."""
    from tone.datasets import load_dataset

    texts = [e.text for e in load_dataset("vader-tweets", settings.data_dir)]
    return list(itertools.islice(itertools.cycle(texts), n))


def _transformer_for_bench(settings: Settings) -> tuple[Scorer, str]:
    """The configured/trained transformer; else the packaged MiniLM with a fresh 3-class head (same speed)."""
    from tone.errors import ArtifactError
    from tone.scoring.loader import load_scorer, torch_options

    try:
        scorer = load_scorer("transformer", settings)
        return scorer, scorer.version
    except ArtifactError:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from tone.labels import TONE_LABELS
        from tone.scoring.rnn import minilm_dir
        from tone.scoring.transformer import TransformerScorer

        base = minilm_dir()
        model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=3)
        scorer = TransformerScorer(
            model,
            AutoTokenizer.from_pretrained(str(base)),
            "minilm-untrained-head",
            labels=TONE_LABELS,
            **torch_options(settings),
        )
        return scorer, "packaged MiniLM, untrained head"


def run_scorer_bench(
    settings: Settings,
    *,
    n: int = 2000,
    scorers: Sequence[str] | None = None,
    with_pipeline: bool = True,
    repeat: int = 3,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every scorer (and the pipeline references) on the same ``n`` tweets; return the figures."""
    import torch

    from model_training.defaults import ensure_default_rnn
    from tone.scoring.loader import load_scorer

    texts = bench_texts(settings, n)
    rows: list[dict[str, Any]] = []
    device = "cpu"
    transformer = None
    for name in scorers or ("vader", *MODEL_KINDS):
        if name == "transformer":
            scorer, model = _transformer_for_bench(settings)
            transformer = scorer
        else:
            if name == "rnn":
                ensure_default_rnn(settings, say=say)
            scorer = load_scorer(name, settings)
            model = scorer.version
        device = str(getattr(scorer, "device", device))
        scorer.predict_proba(texts[:WARMUP])
        say(f"running {name} on {n} tweets")
        seconds = _timed(partial(scorer.predict_proba, texts), repeat)
        rows.append({"name": name, "model": model, "seconds": seconds, "tweets_per_s": n / seconds})

    if with_pipeline and transformer is not None:
        from transformers import pipeline

        model_obj, tok = transformer.model, transformer.tokenizer  # type: ignore[attr-defined]
        pipe = pipeline(
            "text-classification",
            model=model_obj,
            tokenizer=tok,
            top_k=None,
            device=model_obj.device,
            truncation=True,
            max_length=128,
        )
        pipe(texts[:WARMUP], batch_size=64)
        say(f"running HF pipeline per tweet on {n} tweets")
        per_tweet = _timed(lambda: [pipe(t) for t in texts], repeat)
        say(f"running HF pipeline batch_size=64 on {n} tweets")
        batched = _timed(lambda: pipe(texts, batch_size=64), repeat)
        ref_model = next(r["model"] for r in rows if r["name"] == "transformer")
        rows.append(
            {"name": "hf-pipeline-per-tweet", "model": ref_model, "seconds": per_tweet, "tweets_per_s": n / per_tweet}
        )
        rows.append(
            {"name": "hf-pipeline-batch64", "model": ref_model, "seconds": batched, "tweets_per_s": n / batched}
        )
        for row in rows:
            if row["name"] == "transformer":
                row["vs_pipeline_per_tweet"] = row["tweets_per_s"] / (n / per_tweet)
                row["vs_pipeline_b64"] = row["tweets_per_s"] / (n / batched)
    return {"tweets": n, "device": device, "threads": torch.get_num_threads(), "repeat": repeat, "rows": rows}
