"""The default model `make demo` and a fresh `tone stream` score with: trained here, on first use.

Deciding to train is a command's call (`tone stream`, `tone bench`), never the loader's: the kernel loads models,
this stage trains them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from model_training.hparams import HParams
from tone.errors import ArtifactError
from tone.scoring import artifacts
from tone.scoring.loader import default_model_path
from tone.settings import Settings

# The first-use recipe, sized to train within 3 minutes on 2 cores (docs/models.md has the measured time and scores):
# both labelled tweet sources (VADER's small one counted three times, so the large one does not drown it), one
# epoch, the minority class (positive) weighted up. The README recommends the distilled RNN from `tone train`.
DEFAULT_RNN_DATA = "vader-tweets*3,crowdflower-tweets"
DEFAULT_RNN_HPARAMS = HParams(model="rnn", epochs=1, patience=0, max_length=64, class_weight=0.5)


def ensure_default_rnn(settings: Settings, say: Callable[[str], None] = print) -> Path:
    """Train and cache the default RNN unless a valid one is cached already; returns its path."""
    path = default_model_path(settings, "rnn")
    try:
        artifacts.verify(path)
        return path
    except ArtifactError:
        pass
    from model_training.workflow import train_and_save

    say(f"no trained RNN in {path}: training the default one on {DEFAULT_RNN_DATA} (a few minutes, once)")
    train_and_save(settings, model="rnn", out=path, data=DEFAULT_RNN_DATA, hp=DEFAULT_RNN_HPARAMS, say=say)
    return path
