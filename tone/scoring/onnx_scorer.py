"""The ONNX Runtime backend for transformer artifacts that carry an export (``onnx/`` in the artifact).

Same tokeniser, normalisation, token-budget batching and label order as the torch backend
(:mod:`tone.scoring.transformer`); the graph was exported, graph-optimised and checked against the torch model when
the artifact was made (``model_training.onnx_export``), and its files are checksummed with the rest. It runs on the
CPU and never imports torch: a worker that scores with it loads in a fraction of the time and memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tone.errors import ArtifactError
from tone.scoring.base import Scorer
from tone.scoring.transformer_common import (
    DEFAULT_MAX_LENGTH,
    ONNX_FILES,
    batch_limits,
    batched_proba,
    onnx_precision,
    softmax,
)


class FastTokenizer:
    """The artifact's ``tokenizer.json`` through the ``tokenizers`` library, called like a Hugging Face tokenizer.

    ``transformers.AutoTokenizer`` imports torch (through its config module); this does not, and gives the same ids:
    the special tokens come from the file's post-processor and truncation counts them, as ``truncation=True`` does.
    """

    def __init__(self, tokenizer: Any, pad_token_id: int) -> None:
        """Wrap a ``tokenizers.Tokenizer``."""
        self.tokenizer = tokenizer
        self.pad_token_id = pad_token_id

    @classmethod
    def from_artifact(cls, path: Path) -> FastTokenizer:
        """``tokenizer.json`` and the pad token named in ``tokenizer_config.json``."""
        import json

        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
            config = (
                json.loads((path / "tokenizer_config.json").read_text())
                if (path / "tokenizer_config.json").is_file()
                else {}
            )
        except Exception as exc:  # tokenizers raises a bare Exception on a bad file (OSError when it is missing)
            msg = f"artifact {path} holds no loadable tokenizer.json: {exc}"
            raise ArtifactError(msg) from None
        pad = config.get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        pad_id = tokenizer.token_to_id(pad) if isinstance(pad, str) else None
        tokenizer.no_padding()
        return cls(tokenizer, pad_id if pad_id is not None else 0)

    def __call__(self, texts: Sequence[str], *, truncation: bool, max_length: int, padding: bool) -> dict[str, Any]:
        """``{"input_ids": [...]}`` for ``texts``, special tokens added, truncated to ``max_length`` (no padding)."""
        if truncation:
            self.tokenizer.enable_truncation(max_length)
        else:
            self.tokenizer.no_truncation()
        return {"input_ids": [e.ids for e in self.tokenizer.encode_batch(list(texts))]}


class OnnxTransformerScorer(Scorer):
    """Batched inference with an ONNX Runtime session on the CPU."""

    kind = "transformer"
    device = "cpu"

    def __init__(
        self,
        model_file: Path,
        tokenizer: Any,
        version: str,
        *,
        labels: Sequence[str],
        precision: str = "fp32",
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int | None = None,
        token_budget: int | None = None,
        threads: int = 0,
    ) -> None:
        """Open a session on ``model_file`` (``threads``: intra-op threads, 0 for one per core)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # warnings about unused initialisers are noise to a user
        try:
            self.session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped Fail/InvalidGraph errors
            msg = f"cannot open ONNX graph {model_file}: {exc}"
            raise ArtifactError(msg) from None
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = tokenizer
        self.labels = tuple(labels)
        self.version = version
        self.backend = f"onnx-{precision}"
        self.max_length = max_length
        self.batch_size, self.token_budget = batch_limits("cpu", batch_size, token_budget)

    @classmethod
    def from_artifact(
        cls, path: Path, manifest: dict[str, Any], *, precision: str = "auto", **options: Any
    ) -> OnnxTransformerScorer:
        """Open a verified artifact's ONNX graph (``precision``: auto, fp32 or int8; see ``onnx_precision``)."""
        chosen = onnx_precision(manifest, precision)
        if chosen is None:
            msg = f"artifact {path} has no ONNX export"
            raise ArtifactError(msg)
        options.pop("device", None)  # checked by choose_backend: the ONNX backend is CPU only
        tokenizer = FastTokenizer.from_artifact(path)
        max_length = int((manifest.get("config") or {}).get("max_length", DEFAULT_MAX_LENGTH))
        return cls(
            path / ONNX_FILES[chosen],
            tokenizer,
            manifest["version"],
            labels=manifest["labels"],
            precision=chosen,
            max_length=max_length,
            **options,
        )

    @classmethod
    def like(cls, scorer: Any, model_file: Path, precision: str, **options: Any) -> OnnxTransformerScorer:
        """The ONNX graph of ``scorer``'s model, with its tokenizer, labels, max length and version."""
        return cls(
            model_file,
            scorer.tokenizer,
            scorer.version,
            labels=scorer.labels,
            precision=precision,
            max_length=scorer.max_length,
            **options,
        )

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities in input order."""

        def forward(input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            feed = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(input_ids)
            (logits,) = self.session.run(["logits"], feed)
            return softmax(logits)

        return batched_proba(self, texts, forward)
