"""Train -> evaluate on the held-out test split -> save an artifact whose manifest carries the metrics.

Used by `tone train`, by the embedded default model (trained on first use) and by the training entry point that
SageMaker and the local tuner run.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from model_training.hparams import HParams
from model_training.metrics import classification_report
from tone.datasets import Example, label_counts, load_dataset, split_examples
from tone.errors import ArtifactError
from tone.scoring.artifacts import DEFAULT_LANGUAGES
from tone.scoring.base import Scorer
from tone.settings import Settings

# Extra labelled data for the train split by default: none. VADER's rated review snippets (`--extra-data
# vader-reviews`) made the RNN 5x slower to train and no better on the tweet test split (0.690 vs 0.694).
DEFAULT_DATA = "vader-tweets"
DEFAULT_EXTRA_DATA: dict[str, tuple[str, ...]] = {"rnn": (), "transformer": ()}


def evaluate_scorer(scorer: Scorer, examples: Sequence[Example]) -> dict[str, Any]:
    """Classification report of ``scorer`` on ``examples`` plus its throughput on them."""
    t0 = time.perf_counter()
    predicted = scorer.predict([e.text for e in examples])
    seconds = time.perf_counter() - t0
    report = classification_report([e.label for e in examples], predicted, scorer.labels)
    report["tweets_per_s"] = len(examples) / seconds if seconds else 0.0
    return report


def train_and_save(
    settings: Settings,
    *,
    model: str = "rnn",
    out: Path,
    data: str = DEFAULT_DATA,
    extra_data: Sequence[str] | None = None,
    hp: HParams | None = None,
    teacher: str | None = None,
    unlabeled: str | None = None,
    base_model: str | None = None,
    languages: Sequence[str] | None = None,
    say: Callable[[str], None] = print,
    checkpoint_dir: Path | None = None,
    onnx: bool = True,
    int8: bool = True,
) -> dict[str, Any]:
    """Train a ``model`` scorer, evaluate it on the test split of ``data`` and save it to ``out``.

    A transformer also gets its ONNX export (``onnx``), with an int8 graph when ``int8`` and its guard accepts it.
    ``languages``: what the model reads, for its manifest; default: its training data's (every data set here is
    English).
    """
    from model_training.train import train_rnn, train_transformer
    from tone.scoring.loader import load_scorer

    hp = hp or HParams(model=model)  # type: ignore[arg-type]
    if hp.model != model:
        hp = HParams.from_hyperparameters({**hp.to_hyperparameters(), "model": model})
    extra_data = DEFAULT_EXTRA_DATA[model] if extra_data is None else tuple(extra_data)
    split = split_examples(load_dataset(data, settings.data_dir))
    extra = [ex for spec in extra_data for ex in load_dataset(spec, settings.data_dir)]
    teacher_scorer = load_scorer(teacher, settings) if teacher else None
    if unlabeled == "train":
        # distil over the training texts themselves: each row's target blends its hard label and the teacher's
        unlabeled_texts = [e.text for e in split.train + extra]
    else:
        unlabeled_texts = [e.text for e in load_dataset(unlabeled, settings.data_dir)] if unlabeled else []
    say(
        f"data {data}: train {label_counts(split.train)}, val {len(split.val)}, test {len(split.test)}; "
        f"extra {list(extra_data)}: {len(extra)}"
    )

    t0 = time.monotonic()
    trainer = train_rnn if model == "rnn" else partial(train_transformer, base_model=base_model)
    result = trainer(
        split.train + extra,
        split.val,
        hp,
        teacher=teacher_scorer,
        unlabeled=unlabeled_texts,
        log=say,
        checkpoint_dir=checkpoint_dir,
    )
    stack_about: dict[str, Any] = {}
    metrics_alone: dict[str, Any] = {}
    if model == "rnn" and hp.vader_stack:
        from model_training.stacking import add_vader_stack

        stack_about = add_vader_stack(result.scorer, split.val, data, say)  # type: ignore[arg-type]
        stack, result.scorer.stack = result.scorer.stack, None  # type: ignore[attr-defined]
        metrics_alone = {"test_macro_f1_without_stack": evaluate_scorer(result.scorer, split.test)["macro_f1"]}
        result.scorer.stack = stack  # type: ignore[attr-defined]
    train_seconds = time.monotonic() - t0
    test = evaluate_scorer(result.scorer, split.test)
    say(
        f"test_macro_f1={test['macro_f1']:.4f} test_accuracy={test['accuracy']:.4f} "
        f"test_macro_recall={test['macro_recall']:.4f}" + "".join(f" {k}={v:.4f}" for k, v in metrics_alone.items())
    )
    metrics = {
        "test_macro_f1": test["macro_f1"],
        "test_accuracy": test["accuracy"],
        "test_macro_recall": test["macro_recall"],
        "val_macro_f1": result.history[result.best_epoch - 1]["val_macro_f1"] if result.best_epoch else None,
        "best_epoch": result.best_epoch,
        "train_seconds": round(train_seconds, 1),
        **metrics_alone,
    }
    save = getattr(result.scorer, "save", None)
    if save is None:
        msg = f"scorer {result.scorer!r} cannot be saved"
        raise TypeError(msg)
    exported: dict[str, Any] = {}
    if model == "transformer" and (
        section := _export(result.scorer, Path(out), split.val, onnx=onnx, int8=int8, say=say)
    ):
        exported["onnx"] = section
    if stack_about:
        save = partial(save, stack_about=stack_about)
    manifest: dict[str, Any] = save(
        out,
        languages=list(languages or DEFAULT_LANGUAGES),
        metrics=metrics,
        params=hp.to_hyperparameters(),
        data={
            "dataset": data,
            "extra": list(extra_data),
            "teacher": teacher,
            "unlabeled": unlabeled,
            "base_model": base_model,
            "split": "sha256(id) stratified 80/10/10",
            # the stream's drift signal compares the live label mix with this
            "train_label_counts": label_counts(split.train + extra),
        },
        history=result.history,
        environment={"python": platform.python_version(), "machine": platform.machine()},
        **exported,
    )
    say(f"saved {manifest['version']} to {out}")
    return manifest


def _export(
    scorer: Scorer, out: Path, val: Sequence[Example], *, onnx: bool, int8: bool, say: Callable[[str], None]
) -> dict[str, Any] | None:
    """The ONNX section of a new transformer artifact, or None (then it runs on torch only): never fails training."""
    import shutil

    shutil.rmtree(out / "onnx", ignore_errors=True)  # nothing stale from an earlier run into this manifest
    if not onnx:
        return None
    try:
        from model_training.onnx_export import export_onnx

        return export_onnx(scorer, out, val, int8=int8, say=say)  # type: ignore[arg-type]
    except ImportError as exc:
        say(f"onnx: no export ({exc}); install the ml extra (pip install 'tweet-tone[ml]') for the ONNX backend")
    except ArtifactError as exc:
        say(f"onnx: export refused, the artifact runs on torch: {exc}")
    return None
