"""Each model kind's recommended recipe: what `tone train` does by default, and the model a fresh stream trains.

Deciding to train is a command's call (`tone stream`, `tone bench`), never the loader's: the kernel loads models,
this stage trains them. docs/models.md has the measured scores and times of each recipe.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_training.hparams import HParams
from tone.errors import ArtifactError, ConfigError
from tone.scoring import artifacts
from tone.scoring.loader import default_model_path, unusable_default_rnn
from tone.settings import Settings


@dataclass(frozen=True)
class Recipe:
    """Training data and the hyperparameters that differ from HParams' defaults."""

    data: str
    hparams: Mapping[str, Any] = field(default_factory=dict)


RECIPES: dict[str, Recipe] = {
    # Sized to train within 3 minutes on 2 cores, as a fresh `tone stream` does it once: both labelled tweet sources
    # (VADER's small one counted three times, so the large one does not drown it), one epoch (a second one lowered
    # validation macro-F1), the minority class (positive) weighted up, VADER's lexicon as token features.
    "rnn": Recipe(
        "vader-tweets*3,crowdflower-tweets", {"epochs": 1, "patience": 0, "max_length": 64, "class_weight": 0.5}
    ),
    # 31 minutes on 2 cores (docs/models.md: "2 epochs on both sources").
    "transformer": Recipe(
        "vader-tweets,crowdflower-tweets",
        {"epochs": 2, "patience": 1, "max_length": 64, "batch_size": 32, "class_weight": 0.5},
    ),
}
# `tone train --quick`: a smoke run (VADER's tweets alone, one epoch) for tests and a first look; not a good model.
QUICK = Recipe("vader-tweets", {"epochs": 1, "patience": 0, "max_length": 64})


def recipe_for(model: str, *, quick: bool = False) -> Recipe:
    """The recipe `tone train --model <model>` starts from."""
    if model not in RECIPES:
        msg = f"model must be one of {', '.join(RECIPES)}, got {model!r}"
        raise ConfigError(msg)
    return QUICK if quick else RECIPES[model]


def recipe_hparams(model: str, given: Mapping[str, Any], *, quick: bool = False) -> HParams:
    """The recipe's hyperparameters with every value in ``given`` that is not None taking precedence."""
    chosen = {k: v for k, v in given.items() if v is not None}
    return HParams(**{"model": model, **recipe_for(model, quick=quick).hparams, **chosen})


def ensure_default_rnn(settings: Settings, say: Callable[[str], None] = print) -> Path:
    """Train and cache the default RNN when it is missing (first use, said so); returns its path.

    One that is there but does not verify (tampered, corrupt) is refused with what to do, never trained over: its
    files changed behind the stream's back, and a person should know.
    """
    path = default_model_path(settings, "rnn")
    if (path / artifacts.MANIFEST).is_file():
        try:
            artifacts.verify(path)
        except ArtifactError as exc:
            raise unusable_default_rnn(path, exc) from None
        return path
    from model_training.workflow import train_and_save

    recipe = RECIPES["rnn"]
    say(f"no trained RNN in {path}: training the default one on {recipe.data} (a few minutes, once)")
    train_and_save(settings, model="rnn", out=path, data=recipe.data, hp=recipe_hparams("rnn", {}), say=say)
    return path
