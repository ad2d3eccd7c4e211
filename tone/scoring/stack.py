"""VADER's sentence scores stacked on a model's probabilities: a small output layer fitted on held-out data.

VADER's rules work on the whole sentence (negation scope, "but", capitals, "!!!", boosters), which a few thousand
labelled tweets cannot teach an RNN, and on VADER's own tweets it is near-perfect on negative and positive while its
neutral is weak. The stack is a multinomial logistic regression over the model's log-probabilities and VADER's
(neg, neu, pos, compound, compound², |compound|), fitted after training on the validation split, where the model's
outputs are as unseen as in use (model_training.stacking). It keeps the model's strength and borrows VADER's.

Cost: VADER runs on every text the scorer sees (about 0.02 ms a tweet here with VaderRules, docs/models.md).
The layer lives in ``stack.json`` inside the artifact, so the artifact's checksums and version cover it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from tone.errors import ArtifactError

STACK_FILE: Final = "stack.json"
VADER_FEATURES: Final = ("vader_neg", "vader_neu", "vader_pos", "vader_compound", "vader_compound_sq", "vader_abs")


def feature_names(labels: Sequence[str]) -> tuple[str, ...]:
    """The stack's inputs, in order: the model's log-probability of each label, then VADER's sentence scores."""
    return (*(f"log_p_{label}" for label in labels), *VADER_FEATURES)


class VaderFeatures:
    """VADER's sentence scores of texts, as the stack's columns (vaderSentiment is imported on first use)."""

    def __init__(self) -> None:
        """Load VADER's bundled lexicon."""
        from tone.scoring.vader import VaderRules

        self._rules = VaderRules()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 6): neg, neu, pos, compound, compound², |compound|."""
        out = np.zeros((len(texts), len(VADER_FEATURES)), dtype=np.float64)
        polarity = self._rules.polarity
        for i, text in enumerate(texts):
            neg, neu, pos, c = polarity(text)
            out[i] = (neg, neu, pos, c, c * c, abs(c))
        return out


def stack_inputs(probs: np.ndarray, vader: np.ndarray) -> np.ndarray:
    """The stack's input rows from a model's probabilities and :class:`VaderFeatures`' columns."""
    return np.hstack([np.log(np.clip(probs.astype(np.float64), 1e-9, 1.0)), vader])


@dataclass(frozen=True)
class Stack:
    """``softmax(x @ weight.T + bias)`` over :func:`feature_names`' inputs."""

    labels: tuple[str, ...]
    weight: np.ndarray  # (labels, features)
    bias: np.ndarray  # (labels,)

    def __post_init__(self) -> None:
        """Check the shapes against the labels (an artifact's stack.json is input like any other)."""
        n = len(feature_names(self.labels))
        if self.weight.shape != (len(self.labels), n) or self.bias.shape != (len(self.labels),):
            msg = (
                f"stack weights of shape {self.weight.shape} and bias {self.bias.shape} do not fit "
                f"{len(self.labels)} labels and {n} inputs"
            )
            raise ArtifactError(msg)
        if not (np.isfinite(self.weight).all() and np.isfinite(self.bias).all()):
            msg = "stack weights are not all finite numbers"
            raise ArtifactError(msg)

    def proba(self, inputs: np.ndarray) -> np.ndarray:
        """Class probabilities (float32) for :func:`stack_inputs` rows."""
        logits = inputs @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        probs: np.ndarray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return probs

    def to_json(self, **about: Any) -> dict[str, Any]:
        """The content of ``stack.json`` (``about``: how it was fitted, for people)."""
        return {
            "labels": list(self.labels),
            "features": list(feature_names(self.labels)),
            "weight": self.weight.tolist(),
            "bias": self.bias.tolist(),
            **about,
        }

    def save(self, directory: Path, **about: Any) -> None:
        """Write ``stack.json`` into an artifact directory (before its manifest is written)."""
        (Path(directory) / STACK_FILE).write_text(json.dumps(self.to_json(**about), indent=1) + "\n")

    @classmethod
    def load(cls, directory: Path, labels: Sequence[str]) -> Stack | None:
        """The stack of an artifact directory, or None when it has none; ArtifactError when it does not fit."""
        path = Path(directory) / STACK_FILE
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text())
            features, weight, bias = raw["features"], raw["weight"], raw["bias"]
            if list(raw["labels"]) != list(labels) or list(features) != list(feature_names(labels)):
                msg = f"labels {raw['labels']} / inputs {features} are not this model's"
                raise ValueError(msg)
            return cls(tuple(labels), np.asarray(weight, dtype=np.float64), np.asarray(bias, dtype=np.float64))
        except (ValueError, KeyError, TypeError, ArtifactError) as exc:
            msg = f"artifact {directory} has an unusable {STACK_FILE}: {exc}"
            raise ArtifactError(msg) from None
