"""Training hyperparameters: one validated dataclass that maps 1:1 onto CLI flags and SageMaker hyperparameters."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from tone.errors import ConfigError
from tone.scoring.kinds import MODEL_KINDS, ModelKind

# Defaults that differ by model: a GRU from MiniLM embeddings wants a larger learning rate than fine-tuning.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "rnn": {"lr": 1e-3, "epochs": 10, "batch_size": 64, "dropout": 0.5, "warmup": 0.05},
    "transformer": {"lr": 3e-5, "epochs": 6, "batch_size": 16, "dropout": 0.1, "warmup": 0.1},
}

# (low, high) inclusive bounds for numeric fields; the error message quotes them.
BOUNDS: dict[str, tuple[float, float]] = {
    "lr": (1e-7, 1.0),
    "epochs": (1, 1000),
    "batch_size": (1, 4096),
    "max_length": (8, 512),
    "hidden_size": (8, 2048),
    "dropout": (0.0, 0.9),
    "weight_decay": (0.0, 1.0),
    "warmup": (0.0, 0.5),
    "seed": (0, 2**31 - 1),
    "patience": (0, 100),
    "distill_weight": (0.0, 1.0),
    "class_weight": (0.0, 1.0),
    "confidence_weight": (0.0, 2.0),
    "lexicon": (0, 1),
    "vader_stack": (0, 1),
}


@dataclass(frozen=True)
class HParams:
    """Everything that decides a training run. ``None`` means the model kind's default (see MODEL_DEFAULTS)."""

    model: ModelKind = "rnn"
    lr: float | None = None
    epochs: int | None = None
    batch_size: int | None = None
    max_length: int = 128
    hidden_size: int = 96
    dropout: float | None = None
    weight_decay: float = 0.01
    warmup: float | None = None  # fraction of steps with a linear learning-rate warm-up
    seed: int = 13
    patience: int = 2  # epochs without a better validation macro-F1 before stopping early
    distill_weight: float = 0.5  # share of the loss from a teacher's soft labels, when a teacher is given
    # Row weights in the loss: (inverse label frequency) ** class_weight (0: off, 1: balanced classes), times the
    # labellers' confidence ** confidence_weight (0: off; CrowdFlower rows carry one, others count as 1).
    class_weight: float = 0.0
    confidence_weight: float = 0.0
    # rnn: 1 adds VADER's lexicon as fixed per-token features and its words as whole tokens (model_training.lexicon).
    lexicon: int = 1
    # rnn: 1 stacks VADER's sentence scores on the network's output, fitted on the val split (model_training.stacking).
    vader_stack: int = 1

    def __post_init__(self) -> None:
        """Fill per-model defaults, then check every value; raises ConfigError naming the field."""
        if self.model not in MODEL_KINDS:
            msg = f"model must be one of {', '.join(MODEL_KINDS)}, got {self.model!r}"
            raise ConfigError(msg)
        for name, value in MODEL_DEFAULTS[self.model].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        for name, (low, high) in BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                msg = f"{name} must be a number in [{low}, {high}], got {value!r}"
                raise ConfigError(msg)
            if not low <= value <= high:
                msg = f"{name}={value} is out of range: allowed [{low}, {high}]"
                raise ConfigError(msg)

    def to_hyperparameters(self) -> dict[str, str]:
        """SageMaker hyperparameters: every field, as strings (what SageMaker passes to the entry point)."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}

    def to_cli_args(self) -> list[str]:
        """The same values as command-line flags for the training entry point (``--batch-size 64``...)."""
        args = []
        for name, value in self.to_hyperparameters().items():
            args += [f"--{name.replace('_', '-')}", value]
        return args

    @classmethod
    def from_hyperparameters(cls, values: dict[str, Any]) -> HParams:
        """Parse SageMaker-style string values (unknown names are an error, not silently dropped)."""
        known = {f.name: f for f in fields(cls)}
        if unknown := sorted(set(values) - set(known)):
            msg = f"unknown hyperparameters {unknown}; known: {sorted(known)}"
            raise ConfigError(msg)
        parsed: dict[str, Any] = {}
        for name, raw in values.items():
            kind = str(known[name].type)
            text = str(raw).strip()
            if text in ("", "None"):
                continue
            try:
                if "int" in kind and "float" not in kind:
                    parsed[name] = int(float(text)) if float(text).is_integer() else int(text)
                elif "float" in kind:
                    parsed[name] = float(text)
                else:
                    parsed[name] = text
            except ValueError:
                msg = f"{name}={text!r} is not a valid {kind}"
                raise ConfigError(msg) from None
        return cls(**parsed)

    # Typed accessors (mypy: the Optional fields are always filled after __post_init__).
    @property
    def lr_(self) -> float:
        """Learning rate."""
        return float(self.lr)  # type: ignore[arg-type]

    @property
    def epochs_(self) -> int:
        """Epoch budget."""
        return int(self.epochs)  # type: ignore[arg-type]

    @property
    def batch_size_(self) -> int:
        """Batch size."""
        return int(self.batch_size)  # type: ignore[arg-type]

    @property
    def dropout_(self) -> float:
        """Dropout probability."""
        return float(self.dropout)  # type: ignore[arg-type]

    @property
    def warmup_(self) -> float:
        """Warm-up fraction."""
        return float(self.warmup)  # type: ignore[arg-type]
