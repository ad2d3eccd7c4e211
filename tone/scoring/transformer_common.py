"""What the two transformer backends (torch, ONNX Runtime) share: tokenising, batch limits, backend choice.

Imports neither torch nor onnxruntime, so the ONNX backend runs in a process that never loads torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import numpy as np

from tone import envvars as env
from tone.errors import ConfigError
from tone.scoring.base import pad_rows, token_budget_batches
from tone.scoring.kinds import ONNX_PRECISIONS, TRANSFORMER_BACKENDS
from tone.text import normalize_tweet

DEFAULT_MAX_LENGTH: Final = 128
# Rows per batch and padded tokens per batch, by where the model runs. On 2 CPU cores, 16-64 rows and 1,024-2,048
# tokens ran within 5% of each other and 4,096 tokens ran 20% slower (docs/benchmarks.md); a GPU wants large batches.
DEFAULT_ROWS: Final = {"cpu": 64, "gpu": 1024}
DEFAULT_TOKEN_BUDGET: Final = {"cpu": 2048, "gpu": 65536}

# Where an artifact's ONNX graphs live, relative to the artifact directory.
ONNX_FILES: Final = {"fp32": "onnx/model.onnx", "int8": "onnx/model.int8.onnx"}


def label_names(config: Any) -> tuple[str, ...]:
    """Labels in id order from a model config, lower-cased (``Negative`` and ``negative`` are one label)."""
    id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    return tuple(id2label[i].lower() for i in range(len(id2label)))


def batch_limits(device_type: str, batch_size: int | None, token_budget: int | None) -> tuple[int, int]:
    """(max rows, max padded tokens) per batch: the settings when given (> 0), else this device's defaults."""
    kind = "cpu" if device_type == "cpu" else "gpu"
    return (batch_size or DEFAULT_ROWS[kind], token_budget or DEFAULT_TOKEN_BUDGET[kind])


def encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of the normalised texts, truncated to ``max_length``, unpadded (batches pad themselves)."""
    enc = tokenizer([normalize_tweet(t) for t in texts], truncation=True, max_length=max_length, padding=False)
    return [list(ids) for ids in enc["input_ids"]]


def batched_proba(
    scorer: Any, texts: Sequence[str], forward: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """Class probabilities in input order, for either backend: encode, cut token-budget batches, pad, run.

    ``scorer`` gives the tokenizer, max length, labels and batch limits; ``forward(ids, mask)`` returns one batch's
    probabilities (the backend's own model call).
    """
    out = np.zeros((len(texts), len(scorer.labels)), dtype=np.float32)
    if not texts:
        return out
    ids = encode(scorer.tokenizer, texts, scorer.max_length)
    pad_id = scorer.tokenizer.pad_token_id or 0
    for idx in token_budget_batches([len(s) for s in ids], scorer.token_budget, scorer.batch_size):
        out[idx] = forward(*pad_rows([ids[i] for i in idx], pad_id))
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, shifted by the row maximum so large logits cannot overflow."""
    z = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def onnx_precision(manifest: Mapping[str, Any], wanted: str) -> str | None:
    """Which ONNX graph of an artifact to run for the ``onnx_precision`` setting; None when it has no export.

    ``auto`` takes int8 only when the export's accuracy guard accepted it; asking for int8 that the guard refused
    (or never tried) is an error that says why.
    """
    if wanted not in ONNX_PRECISIONS:
        msg = f"{env.ONNX_PRECISION}={wanted!r} is not one of {', '.join(ONNX_PRECISIONS)}"
        raise ConfigError(msg)
    section = manifest.get("onnx") or {}
    if not section.get("fp32"):
        return None
    int8 = section.get("int8") or {}
    if wanted == "fp32" or (wanted == "auto" and not int8.get("accepted")):
        return "fp32"
    if not int8.get("accepted"):
        reason = int8.get("reason", "the export did not try int8")
        msg = (
            f"{env.ONNX_PRECISION}=int8 but artifact {manifest.get('version')} has no accepted int8 graph ({reason}). "
            f"Use {env.ONNX_PRECISION}=auto or fp32."
        )
        raise ConfigError(msg)
    return "int8"


def choose_backend(manifest: Mapping[str, Any] | None, backend: str, device: str) -> str:
    """``torch`` or ``onnx`` for a transformer, from the backend and device settings and what the artifact holds.

    ``auto`` runs ONNX on the CPU when the artifact carries an export and torch otherwise; ``onnx`` without an
    export, or on a GPU, is an error naming the fix. ``manifest`` is None for a plain Hugging Face model.
    """
    has_onnx = bool(manifest and (manifest.get("onnx") or {}).get("fp32"))
    if backend == "torch":
        return "torch"
    if backend == "onnx":
        if not has_onnx:
            what = f"artifact {manifest.get('version')}" if manifest else "a plain Hugging Face model"
            msg = (
                f"{env.TRANSFORMER_BACKEND}=onnx but {what} has no ONNX export. Add one with "
                f"`tone models export-onnx PATH --out NEW_PATH`, or set {env.TRANSFORMER_BACKEND}=auto or torch."
            )
            raise ConfigError(msg)
        if device in ("cuda", "mps"):
            msg = (
                f"{env.TRANSFORMER_BACKEND}=onnx runs on the CPU (onnxruntime's CPU build), but {env.DEVICE}={device}. "
                f"On a GPU set {env.TRANSFORMER_BACKEND}=auto or torch; for ONNX set {env.DEVICE}=cpu."
            )
            raise ConfigError(msg)
        return "onnx"
    if backend not in TRANSFORMER_BACKENDS:
        msg = f"{env.TRANSFORMER_BACKEND}={backend!r} is not one of {', '.join(TRANSFORMER_BACKENDS)}"
        raise ConfigError(msg)
    if not has_onnx or device in ("cuda", "mps"):
        return "torch"
    return "onnx" if device == "cpu" or not _accelerator_present() else "torch"


def _accelerator_present() -> bool:
    """Whether torch sees a GPU (torch is imported only here, and only for device=auto with an ONNX export)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available() or torch.backends.mps.is_available())
