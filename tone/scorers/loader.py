"""Turn the ``scorer`` setting into a loaded scorer: one place for training, streaming and benchmarks.

- ``vader``: the lexicon scorer;
- ``rnn``: the project's default RNN in ``<model_dir>/default-rnn``, trained on first use from the fetched
  VADER tweets when ``auto_train`` (under 3 minutes on 2 cores), else VADER with a warning;
- ``transformer``: ``transformer_model`` when set (hub id, HF directory or artifact), else the fine-tuned MiniLM in
  ``<model_dir>/default-transformer`` (made by ``tone train --model transformer``);
- ``registry``: the registry's approved version (``registry:VERSION`` pins one), fetched and checksum-verified;
- a path: a model artifact (directory or ``model.tar.gz``), checksum-verified.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tone.errors import ArtifactError
from tone.scorers.base import Scorer
from tone.settings import REGISTRY_PREFIX, Settings

if TYPE_CHECKING:
    from tone.registry import Registry

log = logging.getLogger(__name__)


def default_model_path(settings: Settings, kind: str) -> Path:
    """Where the default model of ``kind`` is cached."""
    return settings.model_dir / f"default-{kind}"


def _torch_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {"device": settings.device, "threads": settings.torch_threads}
    if settings.scorer_batch_size:
        options["batch_size"] = settings.scorer_batch_size
    return options


def ensure_default_rnn(settings: Settings, say: Callable[[str], None] = print) -> Path:
    """Train and cache the default RNN unless a valid one is cached already; returns its path."""
    from tone.scorers import artifacts

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


def load_scorer(spec: str, settings: Settings, *, auto_train: bool = False) -> Scorer:
    """Load the scorer named by ``spec`` (a kind or an artifact path) with the device/thread settings."""
    if spec == "vader":
        from tone.scorers.vader import VaderScorer

        return VaderScorer()
    from tone.scorers import artifacts

    if spec == "registry" or spec.startswith(REGISTRY_PREFIX):
        from tone.registry import Registry

        registry = Registry.from_settings(settings)
        version = spec.removeprefix(REGISTRY_PREFIX) if spec != "registry" else registry.approved_version()
        if version is None:
            log.warning(
                "no approved model in the registry at %s yet: scoring with the default RNN", settings.registry_uri
            )
            return load_scorer("rnn", settings, auto_train=auto_train)
        return load_registered(registry, version, settings)
    if spec == "rnn":
        path = default_model_path(settings, "rnn")
        if auto_train:
            ensure_default_rnn(settings)
        try:
            return artifacts.load(path, **_torch_options(settings))
        except ArtifactError as exc:
            from tone.scorers.vader import VaderScorer

            log.warning("no usable default RNN (%s); scoring with VADER. Train it with: tone train --model rnn", exc)
            return VaderScorer()
    if spec == "transformer":
        name = settings.transformer_model
        if name is None:
            path = default_model_path(settings, "transformer")
            if not (path / artifacts.MANIFEST).is_file():
                msg = (
                    f"no transformer configured and none trained in {path}: run `tone train --model transformer`, "
                    "or set TONE_TRANSFORMER_MODEL to a hub id or model directory"
                )
                raise ArtifactError(msg)
            return artifacts.load(path, **_torch_options(settings))
        spec = name
    path = Path(spec).expanduser()
    if (path / artifacts.MANIFEST).is_file() or path.is_file():
        return artifacts.load(path, **_torch_options(settings))
    from tone.scorers.transformer import TransformerScorer

    # A plain Hugging Face directory or hub id (e.g. cardiffnlp/twitter-roberta-base-sentiment-latest).
    return TransformerScorer.from_pretrained(spec, **_torch_options(settings))


def load_registered(registry: Registry, version: str, settings: Settings) -> Scorer:
    """A registry version, fetched and checksum-verified, loaded with this machine's torch options."""
    from tone.scorers import artifacts

    return artifacts.load(registry.fetch(version), **_torch_options(settings))
