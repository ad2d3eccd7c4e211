"""A model is accepted only if it loads and scores: the check `tone models publish` and the hot reload both run.

Checksums prove the files are the ones the manifest names, not that they load: a truncated safetensors file with a
regenerated manifest verifies and still fails in ``load``. So every way in (publish, refresh) loads the model and
scores a few tweets, empty text included, and checks the output is a probability distribution over its labels.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Final

from tone.errors import ArtifactError

if TYPE_CHECKING:
    from tone.scoring.base import Scorer
    from tone.settings import Settings

SMOKE_TEXTS: Final = (
    "I love this so much, best day ever!",
    "This is awful. I hate it and I want a refund.",
    "The meeting moved to 3pm on Thursday.",
    "",  # an empty text after normalisation must still get a distribution
)


def smoke_test(scorer: Scorer) -> None:
    """Score SMOKE_TEXTS; raise ArtifactError unless every result is a distribution over the scorer's labels."""
    results = scorer.score(list(SMOKE_TEXTS))
    if len(results) != len(SMOKE_TEXTS):
        msg = f"smoke test: {len(results)} results for {len(SMOKE_TEXTS)} texts"
        raise ArtifactError(msg)
    for r in results:
        probs = list(r.probs.values())
        if r.label not in scorer.labels or not all(math.isfinite(p) and 0 <= p <= 1 for p in probs):
            msg = f"smoke test: bad output {r}"
            raise ArtifactError(msg)
        if abs(sum(probs) - 1.0) > 1e-3:
            msg = f"smoke test: probabilities sum to {sum(probs):.4f}"
            raise ArtifactError(msg)


def load_checked(path: Path, settings: Settings) -> Scorer:
    """Load an artifact (checksums verified) and smoke-test it; any failure is an ArtifactError saying why."""
    from tone.scoring import factory

    try:
        scorer = factory.load(path, **factory.model_options(settings))
        smoke_test(scorer)
    except ArtifactError:
        raise
    except Exception as exc:  # a file that verifies but does not load (truncated weights, wrong shapes, ...)
        msg = f"{path} does not load or score: {type(exc).__name__}: {exc}"
        raise ArtifactError(msg) from exc
    return scorer
