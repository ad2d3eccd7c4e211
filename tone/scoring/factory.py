"""Build a scorer from a model artifact: the factory, apart from the artifact format (tone.scoring.artifacts).

The format module (manifest, checksums, versions, the SageMaker archive) imports no scorer, and the scorers import
the format to save themselves; this module is the one place that turns a verified artifact into the right scorer,
so no import runs in a circle (artifacts -> rnn -> artifacts before).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tone.scoring import artifacts

if TYPE_CHECKING:
    from tone.scoring.base import Scorer
    from tone.settings import Settings


def torch_options(settings: Settings) -> dict[str, Any]:
    """Device, threads and batch size from the settings, as the torch scorers' keyword arguments."""
    options: dict[str, Any] = {"device": settings.device, "threads": settings.torch_threads}
    if settings.scorer_batch_size:
        options["batch_size"] = settings.scorer_batch_size
    return options


def model_options(settings: Settings) -> dict[str, Any]:
    """What :func:`load` takes from the settings.

    The torch options plus the transformer backend, its ONNX precision and the padded-token budget per batch.
    """
    return {
        **torch_options(settings),
        "backend": settings.transformer_backend,
        "onnx_precision": settings.onnx_precision,
        "token_budget": settings.scorer_token_budget or None,
    }


def load(path: str | Path, **options: Any) -> Scorer:
    """Load a verified artifact directory (or a ``model.tar.gz``) as the right scorer.

    ``options`` go to the scorer (``device``, ``batch_size``, ``threads``...); ``backend`` (auto, torch, onnx),
    ``onnx_precision`` and ``token_budget`` concern transformers only.
    """
    path = Path(path)
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        target = path.parent / (path.name.removesuffix(".tar.gz").removesuffix(".tgz") + ".extracted")
        artifacts.unpack_model_tar(path, target)
        path = target
    manifest = artifacts.verify(path)
    scorer = _load_verified(path, manifest, **options)
    scorer.languages = artifacts.manifest_languages(manifest)
    return scorer


def _load_verified(path: Path, manifest: dict[str, Any], **options: Any) -> Scorer:
    backend = options.pop("backend", "auto")
    precision = options.pop("onnx_precision", "auto")
    token_budget = options.pop("token_budget", None)
    if manifest["kind"] == "rnn":
        from tone.scoring.rnn import RNNScorer

        return RNNScorer.from_artifact(path, manifest, **options)
    from tone.scoring.transformer_common import choose_backend

    if choose_backend(manifest, backend, options.get("device", "auto")) == "onnx":
        from tone.scoring.onnx_scorer import OnnxTransformerScorer

        return OnnxTransformerScorer.from_artifact(
            path, manifest, precision=precision, token_budget=token_budget, **options
        )
    from tone.scoring.transformer import TransformerScorer

    return TransformerScorer.from_artifact(path, manifest, token_budget=token_budget, **options)
