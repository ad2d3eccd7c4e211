"""The names the scoring settings take, defined once (settings, artifacts, training and tuning all read these).

Plain constants: importing this module costs nothing (no numpy, no torch).
"""

from __future__ import annotations

from typing import Final, Literal, get_args

# Models this project trains and stores as artifacts.
ModelKind = Literal["rnn", "transformer"]
MODEL_KINDS: Final[tuple[str, ...]] = get_args(ModelKind)
# What the scorer setting takes besides an artifact path or registry:VERSION; vader needs no training.
SCORER_KINDS: Final[tuple[str, ...]] = (*MODEL_KINDS, "vader", "registry")
REGISTRY_PREFIX: Final = "registry:"

# Where torch scorers run; auto: cuda, then mps, then cpu.
Device = Literal["auto", "cpu", "cuda", "mps"]
DEVICES: Final[tuple[str, ...]] = get_args(Device)

# How a transformer artifact runs. auto: ONNX Runtime on the CPU when the artifact carries an ONNX export, torch
# otherwise (GPU, plain Hugging Face directories, hub ids).
TransformerBackend = Literal["auto", "torch", "onnx"]
TRANSFORMER_BACKENDS: Final[tuple[str, ...]] = get_args(TransformerBackend)
# Which ONNX graph: auto takes int8 only when the export's accuracy guard accepted it, fp32 otherwise.
OnnxPrecision = Literal["auto", "fp32", "int8"]
ONNX_PRECISIONS: Final[tuple[str, ...]] = get_args(OnnxPrecision)
