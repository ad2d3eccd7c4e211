"""Export a transformer to ONNX Runtime, with an accuracy guard on the int8 graph.

Run when a transformer artifact is trained (`tone train --model transformer`), and by `tone models export-onnx`
(and so by `tone models publish`) for an artifact made without one:

1. ``torch.onnx`` (the TorchScript exporter, opset 17) on a copy of the model with eager attention, on the CPU in
   fp32. ONNX Runtime's transformer optimizer fuses that graph's attention into one ``Attention`` op; the graph
   of PyTorch's SDPA attention is left unfused (measured: 270 vs 262 tweets/s, and no int8 attention).
2. Graph optimisation: ``onnxruntime.transformers.optimizer`` fuses attention, embedding+LayerNorm, bias+GELU and
   residual+LayerNorm for BERT-family encoders; other types keep the exported graph and get ONNX Runtime's own
   optimisations when a session opens. Saved as ``onnx/model.onnx``.
3. The fp32 graph must give the torch model's probabilities to within ``FP32_TOLERANCE`` on real texts, or the
   export is refused (the artifact then runs on torch).
4. Dynamic int8 (per-channel int8 weights, activations quantised per batch) is kept as ``onnx/model.int8.onnx``
   only if, on the validation split, macro-F1 drops by at most ``INT8_MAX_F1_DROP`` and at least
   ``INT8_MIN_AGREEMENT`` of the labels equal the fp32 torch model's. Both figures go into the manifest either way.
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from model_training.metrics import classification_report
from tone.errors import ArtifactError
from tone.scoring.smoke import SMOKE_TEXTS
from tone.scoring.transformer_common import ONNX_FILES

if TYPE_CHECKING:
    from tone.datasets import Example
    from tone.scoring.transformer import TransformerScorer

log = logging.getLogger(__name__)

OPSET: Final = 17
FP32_TOLERANCE: Final = 1e-3  # largest |p_onnx - p_torch| accepted for the fp32 graph
INT8_MAX_F1_DROP: Final = 0.005
INT8_MIN_AGREEMENT: Final = 0.99
# Encoders whose exported graph ONNX Runtime's "bert" fusions understand.
BERT_FAMILY: Final = frozenset({"bert", "roberta", "xlm-roberta", "camembert", "distilbert", "electra", "mpnet"})
PROBE_TEXTS: Final = 256  # validation texts the fp32 check runs on (all of SMOKE_TEXTS when there are none)


@contextmanager
def _quiet(level: int) -> Iterator[None]:
    """Drop log records at ``level`` and below while ONNX Runtime's tools run."""
    logging.disable(level)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _export_graph(scorer: TransformerScorer, target: Path) -> None:
    """TorchScript-export a CPU fp32 copy of the model with eager attention: inputs ids + mask, output logits."""
    import torch

    model = copy.deepcopy(scorer.model).to("cpu").float().eval()
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    sample = scorer.tokenizer(["a tweet to trace", "and a longer one to trace with"], padding=True, return_tensors="pt")
    axes = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings(), torch.inference_mode():
        # the tracer warns about Python branches on shapes that do not change the graph for these inputs
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (sample["input_ids"], sample["attention_mask"]),
            str(target),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def _optimise(raw: Path, target: Path, config: Any) -> str:
    """Fuse BERT-family graphs with ONNX Runtime's transformer optimizer; returns what was done."""
    if config.model_type not in BERT_FAMILY:
        shutil.copyfile(raw, target)
        return f"none offline ({config.model_type} is not a BERT-family encoder); ONNX Runtime's at load"
    from onnxruntime.transformers.optimizer import optimize_model

    with _quiet(logging.INFO):  # a log line per fusion, under loggers named after its modules
        optimised = optimize_model(
            str(raw), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size
        )
    optimised.save_model_to_file(str(target))
    fused = {k: v for k, v in optimised.get_fused_operator_statistics().items() if v}
    return "onnxruntime transformers optimizer: " + ", ".join(f"{k} x{v}" for k, v in sorted(fused.items()))


def quantise_int8(fp32: Path, target: Path) -> None:
    """Dynamic int8: per-channel int8 weights for MatMul and Attention, activations quantised per batch."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet(logging.WARNING):  # "consider pre-processing" advice, aimed at static quantisation
        quantize_dynamic(
            str(fp32),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            # the optimizer's fused ops carry no type information for the quantizer's shape inference
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def int8_verdict(f1_drop: float, agreement: float) -> tuple[bool, str]:
    """The int8 guard: accepted, and why (or why not)."""
    if f1_drop > INT8_MAX_F1_DROP:
        return False, f"validation macro-F1 fell by {f1_drop:.4f} (> {INT8_MAX_F1_DROP})"
    if agreement < INT8_MIN_AGREEMENT:
        return False, f"{agreement:.2%} of validation labels agree with fp32 (< {INT8_MIN_AGREEMENT:.0%})"
    return True, f"macro-F1 drop {f1_drop:.4f} <= {INT8_MAX_F1_DROP}, agreement {agreement:.2%} >= 99%"


def export_onnx(
    scorer: TransformerScorer,
    directory: Path,
    validation: Sequence[Example] = (),
    *,
    int8: bool = True,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write ``onnx/`` into an artifact directory (before its manifest is written); returns the manifest section.

    Raises ArtifactError (and leaves no ``onnx/``) when the fp32 graph does not match the torch model.
    """
    import onnxruntime

    from tone.scoring.onnx_scorer import OnnxTransformerScorer

    out_dir = Path(directory) / "onnx"
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32_file, int8_file = Path(directory) / ONNX_FILES["fp32"], Path(directory) / ONNX_FILES["int8"]
    t0 = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="tone-onnx-") as tmp:
            raw = Path(tmp) / "raw.onnx"
            _export_graph(scorer, raw)
            optimisation = _optimise(raw, fp32_file, scorer.model.config)
        texts = [e.text for e in validation]
        probe = texts[:PROBE_TEXTS] or list(SMOKE_TEXTS)
        # the torch model's probabilities on every text the checks need, computed once
        reference = scorer.predict_proba(texts if int8 and texts else probe)
        onnx_probs = OnnxTransformerScorer.like(scorer, fp32_file, "fp32").predict_proba(probe)
        diff = float(np.abs(onnx_probs - reference[: len(probe)]).max())
        if not diff <= FP32_TOLERANCE:
            msg = (
                f"the fp32 ONNX graph differs from the torch model by {diff:.2e} (> {FP32_TOLERANCE}) "
                f"on {len(probe)} texts"
            )
            raise ArtifactError(msg)
    except Exception:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    section: dict[str, Any] = {
        "runtime": f"onnxruntime {onnxruntime.__version__}",
        "opset": OPSET,
        "optimisation": optimisation,
        "fp32": {"file": ONNX_FILES["fp32"], "max_abs_diff": diff, "probe_texts": len(probe)},
    }
    say(f"onnx: fp32 graph exported and optimised ({optimisation}); max |p - p_torch| {diff:.1e}")
    section["int8"] = _guarded_int8(scorer, reference, fp32_file, int8_file, validation, int8=int8, say=say)
    section["export_seconds"] = round(time.monotonic() - t0, 1)
    return section


def _guarded_int8(
    scorer: TransformerScorer,
    reference_probs: np.ndarray,
    fp32_file: Path,
    int8_file: Path,
    validation: Sequence[Example],
    *,
    int8: bool,
    say: Callable[[str], None],
) -> dict[str, Any]:
    if not int8:
        return {"accepted": False, "reason": "not tried (int8 off)"}
    if not validation:
        return {"accepted": False, "reason": "not tried: no labelled validation data to guard it"}
    quantise_int8(fp32_file, int8_file)
    from tone.scoring.onnx_scorer import OnnxTransformerScorer

    texts, gold = [e.text for e in validation], [e.label for e in validation]
    reference = reference_probs.argmax(axis=1)
    quantised = OnnxTransformerScorer.like(scorer, int8_file, "int8").predict_proba(texts).argmax(axis=1)
    labels = list(scorer.labels)
    f1_fp32 = classification_report(gold, [labels[k] for k in reference], labels)["macro_f1"]
    f1_int8 = classification_report(gold, [labels[k] for k in quantised], labels)["macro_f1"]
    agreement = float(np.mean(reference == quantised))
    accepted, reason = int8_verdict(f1_fp32 - f1_int8, agreement)
    if not accepted:
        int8_file.unlink()
    say(f"onnx: int8 {'accepted' if accepted else 'refused'}: {reason}")
    return {
        "accepted": accepted,
        "file": ONNX_FILES["int8"] if accepted else None,
        "reason": reason,
        "validation_texts": len(texts),
        "macro_f1_fp32": f1_fp32,
        "macro_f1_int8": f1_int8,
        "macro_f1_drop": f1_fp32 - f1_int8,
        "label_agreement": agreement,
        "guard": {"max_f1_drop": INT8_MAX_F1_DROP, "min_agreement": INT8_MIN_AGREEMENT},
    }


# Manifest keys that write_manifest and save() derive again; everything else carries over to the new artifact.
_DERIVED: Final = frozenset({"format", "kind", "version", "labels", "created_at", "files", "config", "onnx"})


def add_onnx(
    source: Path,
    out: Path,
    settings: Any,
    *,
    data: str | None = None,
    int8: bool = True,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """A copy of transformer artifact ``source`` in ``out`` with an ONNX export; returns the new manifest.

    The weights are unchanged, so the metrics carry over; the version changes because the files do. The int8 guard
    runs on the validation split of ``data`` (default: the data the manifest says the model was trained on).
    """
    from tone.datasets import load_dataset, split_examples
    from tone.errors import ToneError
    from tone.scoring import artifacts
    from tone.scoring.transformer import TransformerScorer

    manifest = artifacts.verify(source)
    if manifest["kind"] != "transformer":
        msg = f"{source} is a {manifest['kind']} artifact: only transformers have an ONNX backend"
        raise ArtifactError(msg)
    if Path(out).exists() and any(Path(out).iterdir()):
        msg = f"{out} exists and is not empty: give a new directory for the exported artifact"
        raise ArtifactError(msg)
    scorer = TransformerScorer.from_artifact(Path(source), manifest, device="cpu")
    spec = data or (manifest.get("data") or {}).get("dataset")
    validation: Sequence[Example] = ()
    if spec and int8:
        try:
            validation = split_examples(load_dataset(spec, settings.data_dir)).val
        except (ToneError, OSError) as exc:
            say(f"onnx: no validation data from {spec!r} ({exc}): int8 is not tried")
    section = export_onnx(scorer, Path(out), validation, int8=int8, say=say)
    extra = {k: v for k, v in manifest.items() if k not in _DERIVED}
    new = scorer.save(Path(out), **extra, onnx=section)
    say(f"saved {new['version']} (from {manifest['version']}, same weights, with ONNX) to {out}")
    return new
