"""`tone bench scorers`: tweets/s of each scorer on the same tweets, in one run, with accuracy next to speed.

The transformer runs once per backend (torch fp32, ONNX Runtime fp32, ONNX Runtime int8) on the same model. The
references are Hugging Face ``pipeline("text-classification")`` with the same torch model, called per tweet and with
``batch_size=64``. Accuracy is macro-F1 on the test split of a labelled dataset (each distinct text once), and for
the transformer backends the share of labels equal to the torch fp32 model's.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

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


def tweet_flops(lengths: Sequence[int], config: Any) -> float:
    """Forward FLOPs of an encoder over real tokens only (padding is waste, not work).

    Per tweet of L tokens and per layer: 2·L·(4·hidden² + 2·hidden·ffn) for the Q, K, V, output and feed-forward
    matmuls, and 4·L²·hidden for attention's two matmuls.
    """
    h, ff, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token = 2 * layers * (4 * h * h + 2 * h * ff)
    return float(sum(per_token * n + layers * 4 * n * n * h for n in lengths))


def matmul_gflops(repeat: int = 3, size: int = 2048) -> float:
    """This machine's fp32 matmul rate with torch's current threads: the CPU's practical FLOP bound."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = _timed(lambda: a @ b, repeat + 1)
    return 2 * size**3 / seconds / 1e9


def bench_texts(settings: Settings, n: int) -> list[str]:
    """``n`` real tweets, cycling the VADER-rated set (fetched on first use) in a fixed order."""
    from tone.datasets import load_dataset

    texts = [e.text for e in load_dataset("vader-tweets", settings.data_dir)]
    return list(itertools.islice(itertools.cycle(texts), n))


def _transformer_for_bench(settings: Settings) -> tuple[Any, dict[str, Any] | None, str]:
    """The configured/trained transformer on torch, its manifest (None for a plain HF model) and a description.

    Without one, the packaged MiniLM with a fresh 3-class head (same speed, no accuracy to speak of).
    """
    from tone.errors import ArtifactError
    from tone.scoring import artifacts, factory
    from tone.scoring.factory import model_options, torch_options
    from tone.scoring.loader import default_model_path, load_scorer

    name = settings.transformer_model
    path = Path(name).expanduser() if name else default_model_path(settings, "transformer")
    if (path / artifacts.MANIFEST).is_file():
        scorer = factory.load(path, **{**model_options(settings), "backend": "torch"})  # verifies the checksums
        manifest = artifacts.read_manifest(path)
        return scorer, {**manifest, "path": str(path)}, scorer.version
    try:
        scorer = load_scorer("transformer", settings.model_copy(update={"transformer_backend": "torch"}))
        return scorer, None, scorer.version
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
        return scorer, None, "packaged MiniLM, untrained head"


@contextmanager
def _onnx_backends(torch_scorer: Any, manifest: dict[str, Any] | None, settings: Settings) -> Iterator[list[Any]]:
    """ONNX Runtime scorers of the same model: fp32, and int8 whether or not the export's guard accepted it.

    From the artifact's own export when it has one; else exported here into a temporary directory. A refused int8
    graph is not stored in an artifact, so it is rebuilt here to show what the guard turned down, and at what speed.
    """
    from model_training.onnx_export import export_onnx, quantise_int8
    from tone.scoring.onnx_scorer import OnnxTransformerScorer
    from tone.scoring.transformer_common import ONNX_FILES

    def make(model_file: Path, precision: str) -> Any:
        return OnnxTransformerScorer.like(
            torch_scorer,
            model_file,
            precision,
            batch_size=settings.scorer_batch_size or None,
            token_budget=settings.scorer_token_budget or None,
            threads=settings.torch_threads,
        )

    with tempfile.TemporaryDirectory(prefix="tone-bench-onnx-") as tmp:
        section = (manifest or {}).get("onnx")
        root = Path(manifest["path"]) if manifest and section else Path(tmp)
        if not section:
            section = export_onnx(torch_scorer, root, (), say=lambda _: None)
        fp32 = root / ONNX_FILES["fp32"]
        int8 = root / ONNX_FILES["int8"]
        verdict = section.get("int8") or {}
        if not verdict.get("accepted"):
            int8 = Path(tmp) / "int8.onnx"
            quantise_int8(fp32, int8)
        scorers = [make(fp32, "fp32"), make(int8, "int8")]
        scorers[1].guard = "accepted" if verdict.get("accepted") else f"not accepted: {verdict.get('reason', '-')}"
        yield scorers


def _accuracy_set(settings: Settings, spec: str) -> tuple[list[str], list[str]]:
    """Texts and labels of the test split of ``spec``, each distinct text once (``a*3`` repeats are not counted)."""
    from tone.datasets import load_dataset, split_examples

    seen: dict[str, str] = {}
    for e in split_examples(load_dataset(spec, settings.data_dir)).test:
        seen.setdefault(e.text, e.label)
    return list(seen), list(seen.values())


def _load_scorers(
    settings: Settings, names: Sequence[str], say: Callable[[str], None]
) -> tuple[list[tuple[str, str, Scorer]], Any, dict[str, Any] | None]:
    """(row name, model, scorer) for each name; the transformer (on torch) and its manifest, if one was named."""
    from model_training.defaults import ensure_default_rnn
    from tone.scoring.loader import load_scorer

    loaded: list[tuple[str, str, Scorer]] = []
    transformer: Any = None
    manifest: dict[str, Any] | None = None
    for name in names:
        if name == "transformer":
            transformer, manifest, model = _transformer_for_bench(settings)
            loaded.append(("transformer/torch", model, transformer))
            continue
        if name == "rnn":
            ensure_default_rnn(settings, say=say)
        scorer = load_scorer(name, settings)
        loaded.append((name, scorer.version, scorer))
    return loaded, transformer, manifest


def run_scorer_bench(
    settings: Settings,
    *,
    n: int = 2000,
    scorers: Sequence[str] | None = None,
    with_pipeline: bool = True,
    repeat: int = 3,
    accuracy_data: str | None = "auto",
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every scorer (each transformer backend, the pipeline references) on the same ``n`` tweets.

    ``accuracy_data``: a dataset spec whose test split gives macro-F1 per row; ``auto`` takes the transformer's
    training data (from its manifest, else vader-tweets); None skips accuracy.
    """
    import torch

    from model_training.metrics import classification_report

    texts = bench_texts(settings, n)
    rows: list[dict[str, Any]] = []
    loaded, transformer, manifest = _load_scorers(settings, scorers or ("vader", *MODEL_KINDS), say)
    device = str(transformer.device) if transformer is not None else "cpu"
    if accuracy_data == "auto":
        accuracy_data = ((manifest or {}).get("data") or {}).get("dataset") or "vader-tweets"
    gold_texts, gold = _accuracy_set(settings, accuracy_data) if accuracy_data else ([], [])
    reference: np.ndarray | None = None
    flops = 0.0
    if transformer is not None:
        from tone.scoring.transformer_common import encode

        lengths = [len(ids) for ids in encode(transformer.tokenizer, texts, transformer.max_length)]
        flops = tweet_flops(lengths, transformer.model.config)

    def measure(name: str, model: str, scorer: Scorer, **extra: Any) -> None:
        nonlocal reference
        scorer.predict_proba(texts[:WARMUP])
        say(f"running {name} on {n} tweets")
        seconds = _timed(partial(scorer.predict_proba, texts), repeat)
        row: dict[str, Any] = {"name": name, "model": model, "seconds": seconds, "tweets_per_s": n / seconds, **extra}
        if name.startswith("transformer/"):
            row["gflops"] = flops / seconds / 1e9
        if gold_texts:
            predicted = scorer.predict_proba(gold_texts).argmax(axis=1)
            row["macro_f1"] = classification_report(gold, [scorer.labels[k] for k in predicted], scorer.labels)[
                "macro_f1"
            ]
            if name == "transformer/torch":
                reference = predicted
            elif name.startswith("transformer/") and reference is not None:
                row["agreement_vs_torch"] = float(np.mean(predicted == reference))
        rows.append(row)

    for name, model, scorer in loaded:
        measure(name, model, scorer)
        if name != "transformer/torch" or device != "cpu":
            continue  # the ONNX backend is CPU only
        with _onnx_backends(scorer, manifest, settings) as onnx_scorers:
            for onnx_scorer in onnx_scorers:
                guard = getattr(onnx_scorer, "guard", None)
                measure(
                    f"transformer/{onnx_scorer.backend}", model, onnx_scorer, **({"int8_guard": guard} if guard else {})
                )

    rows.append(_detector_row(settings, texts, repeat))
    if with_pipeline and transformer is not None:
        rows += _pipeline_rows(transformer, texts, repeat, say)
        per_tweet, batched = (r["tweets_per_s"] for r in rows[-2:])
        for row in rows:
            if row["name"].startswith("transformer/"):
                row["vs_pipeline_per_tweet"] = row["tweets_per_s"] / per_tweet
                row["vs_pipeline_b64"] = row["tweets_per_s"] / batched
    return {
        "tweets": n,
        "device": device,
        "threads": torch.get_num_threads(),
        "repeat": repeat,
        "accuracy_data": accuracy_data,
        "accuracy_texts": len(gold_texts),
        # the rate a big fp32 matmul reaches here: the transformer rows' GFLOP/s against the machine's bound
        "cpu_matmul_gflops": matmul_gflops() if transformer is not None and device == "cpu" else None,
        "rows": rows,
    }


def _detector_row(settings: Settings, texts: list[str], repeat: int) -> dict[str, Any]:
    """The language detector's own rate on the same tweets (one core; `tone bench langid` has its accuracy).

    What a tweet that declares no language adds to its scoring.
    """
    from tone.langid import LanguageDetector

    detector = LanguageDetector(settings.lang_candidates_list, ["en"])
    seconds = _timed(lambda: detector.detect_many(texts), repeat)
    return {"name": "language detector", "model": "fastText lid.176.ftz", "seconds": seconds,
            "tweets_per_s": len(texts) / seconds}  # fmt: skip


def _pipeline_rows(transformer: Any, texts: list[str], repeat: int, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Hugging Face pipeline() on the same torch model: once per tweet, and with batch_size=64."""
    from transformers import pipeline

    n = len(texts)
    pipe = pipeline(
        "text-classification",
        model=transformer.model,
        tokenizer=transformer.tokenizer,
        top_k=None,
        device=transformer.model.device,
        truncation=True,
        max_length=128,
    )
    pipe(texts[:WARMUP], batch_size=64)
    say(f"running HF pipeline per tweet on {n} tweets")
    per_tweet = _timed(lambda: [pipe(t) for t in texts], repeat)
    say(f"running HF pipeline batch_size=64 on {n} tweets")
    batched = _timed(lambda: pipe(texts, batch_size=64), repeat)
    return [
        {
            "name": "hf-pipeline-per-tweet",
            "model": transformer.version,
            "seconds": per_tweet,
            "tweets_per_s": n / per_tweet,
        },
        {"name": "hf-pipeline-batch64", "model": transformer.version, "seconds": batched, "tweets_per_s": n / batched},
    ]
