"""VADER, the lexicon scorer: no training, ~0.1 ms a tweet. The zero-training fallback and a weak labeler."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from tone.labels import TONE_LABELS
from tone.scoring.base import Scorer

# VADER's own thresholds on the compound score: >= 0.05 positive, <= -0.05 negative.
THRESHOLD: Final = 0.05
# Softmax over (-c, t, c) / T: the arg max reproduces VADER's threshold rule exactly (neutral wins iff |c| < t),
# and T spreads the probabilities so that polarity tracks the compound score.
TEMPERATURE: Final = 0.25


def compound_to_proba(compound: np.ndarray) -> np.ndarray:
    """(negative, neutral, positive) probabilities from VADER compound scores."""
    c = np.asarray(compound, dtype=np.float64)
    logits = np.stack([-c, np.full_like(c, THRESHOLD), c], axis=1) / TEMPERATURE
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    probs: np.ndarray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return probs


class VaderScorer(Scorer):
    """Hutto & Gilbert's VADER (ICWSM 2014), mapped onto the three tone classes."""

    kind = "vader"
    labels = TONE_LABELS

    def __init__(self) -> None:
        """Load VADER's lexicon (bundled with vaderSentiment, no download)."""
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()
        self.version = "vader-3.3.2"

    def compound(self, texts: Sequence[str]) -> np.ndarray:
        """VADER's compound score in [-1, 1] for each text."""
        return np.array([self._analyzer.polarity_scores(t)["compound"] for t in texts], dtype=np.float64)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities; the arg max follows VADER's +-0.05 rule."""
        if not texts:
            return np.zeros((0, 3), dtype=np.float32)
        return compound_to_proba(self.compound(texts))
