"""Tone labels and the numbers derived from class probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Literal, get_args

if TYPE_CHECKING:
    import numpy as np

NEGATIVE: Final = "negative"
NEUTRAL: Final = "neutral"
POSITIVE: Final = "positive"
TONE_LABELS: Final = (NEGATIVE, NEUTRAL, POSITIVE)
# Labels users are ranked by (`tone top`, the API's /users/top, the Redis sorted sets the stream keeps).
RankedLabel = Literal["negative", "positive"]
RANKED_LABELS: Final[tuple[str, ...]] = get_args(RankedLabel)

# Rated datasets (VADER's ground truth: mean rating in -4..+4) become 3 classes at +-0.5.
RATING_NEUTRAL_BAND: Final = 0.5


def rating_to_label(rating: float, band: float = RATING_NEUTRAL_BAND) -> str:
    """Map a signed mean rating to a tone label (neutral inside +-band)."""
    if rating > band:
        return POSITIVE
    if rating < -band:
        return NEGATIVE
    return NEUTRAL


def polarity(probs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """p(positive) - p(negative) per row; 0 for a label map without both (an emotion model, say)."""
    import numpy as np

    if POSITIVE in labels and NEGATIVE in labels:
        return np.asarray(probs[:, labels.index(POSITIVE)] - probs[:, labels.index(NEGATIVE)])
    return np.zeros(len(probs), dtype=probs.dtype)
