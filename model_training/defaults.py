"""The default model `make demo` and a fresh `tone stream` score with: trained here, on first use.

Deciding to train is a command's call (`tone stream`, `tone bench`), never the loader's: the kernel loads models,
this stage trains them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tone.errors import ArtifactError
from tone.scoring import artifacts
from tone.scoring.loader import default_model_path
from tone.settings import Settings


def ensure_default_rnn(settings: Settings, say: Callable[[str], None] = print) -> Path:
    """Train and cache the default RNN unless a valid one is cached already; returns its path."""
    path = default_model_path(settings, "rnn")
    try:
        artifacts.verify(path)
        return path
    except ArtifactError:
        pass
    from model_training.workflow import train_and_save

    say(f"no trained RNN in {path}: training the default one on the VADER-rated tweets (a few minutes, once)")
    train_and_save(settings, model="rnn", out=path, say=say)
    return path
