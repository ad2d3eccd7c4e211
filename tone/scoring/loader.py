"""Turn the ``scorer`` setting into a loaded scorer: one place for training, streaming and benchmarks.

- ``vader``: the lexicon scorer;
- ``rnn``: the project's default RNN in ``<model_dir>/default-rnn`` (training it when missing is the caller's
  decision: ``model_training.defaults.ensure_default_rnn``, which `tone stream` and the benchmarks call; the kernel
  never trains);
- ``transformer``: ``transformer_model`` when set (hub id, HF directory or artifact), else the fine-tuned MiniLM in
  ``<model_dir>/default-transformer`` (made by ``tone train --model transformer``);
- ``registry``: the registry's approved version (``registry:VERSION`` pins one), fetched and checksum-verified;
- a path: a model artifact (directory or ``model.tar.gz``), checksum-verified.

Fail closed: a model that cannot load as configured (corrupt, tampered or mismatched, an unknown registry version,
nothing approved) raises with what to do; nothing is substituted for it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from tone.errors import ArtifactError, ConfigError
from tone.scoring.base import Scorer
from tone.scoring.factory import model_options, torch_options
from tone.scoring.kinds import REGISTRY_PREFIX
from tone.settings import Settings

if TYPE_CHECKING:
    from tone.language import Routes
    from tone.registry import Registry

log = logging.getLogger(__name__)


def default_model_path(settings: Settings, kind: str) -> Path:
    """Where the default model of ``kind`` is cached."""
    return settings.model_dir / f"default-{kind}"


def load_scorer(spec: str, settings: Settings) -> Scorer:
    """Load the scorer named by ``spec`` (a kind or an artifact path) with the device/thread settings."""
    if spec == "vader":
        from tone.scoring.vader import VaderScorer

        return VaderScorer()
    from tone.scoring import artifacts, factory

    if spec == "registry" or spec.startswith(REGISTRY_PREFIX):
        from tone.registry import Registry

        registry = Registry.from_settings(settings)
        version = spec.removeprefix(REGISTRY_PREFIX) if spec != "registry" else registry.approved_version()
        if version is None:
            raise nothing_approved(settings)
        return load_registered(registry, version, settings)
    if spec == "rnn":
        path = default_model_path(settings, "rnn")
        try:
            return factory.load(path, **model_options(settings))
        except ArtifactError as exc:
            raise unusable_default_rnn(path, exc) from None
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
            return factory.load(path, **model_options(settings))
        spec = name
    path = Path(spec).expanduser()
    if (path / artifacts.MANIFEST).is_file() or path.is_file():
        return factory.load(path, **model_options(settings))
    from tone.scoring.transformer import TransformerScorer
    from tone.scoring.transformer_common import choose_backend

    # A plain Hugging Face directory or hub id (e.g. cardiffnlp/twitter-roberta-base-sentiment-latest): torch only.
    choose_backend(None, settings.transformer_backend, settings.device)
    token_budget = settings.scorer_token_budget or None
    return TransformerScorer.from_pretrained(spec, token_budget=token_budget, **torch_options(settings))


def nothing_approved(settings: Settings) -> ConfigError:
    """The error for TONE_SCORER=registry on a registry with no approved version."""
    msg = (
        f"TONE_SCORER=registry, but the registry at {settings.registry_uri} has no approved version: approve one "
        "(tone models list, then tone models approve VERSION), or set TONE_SCORER=rnn; no other model is used instead"
    )
    return ConfigError(msg)


def unusable_default_rnn(path: Path, exc: BaseException) -> ArtifactError:
    """The error for a default RNN that is there but does not verify or load (tampered, corrupt, half-written)."""
    msg = (
        f"the default RNN in {path} cannot be used: {exc}. It is not retrained over: remove that directory to have "
        "`tone stream` train it again, or run `tone train --model rnn`"
    )
    return ArtifactError(msg)


def load_registered(registry: Registry, version: str, settings: Settings) -> Scorer:
    """A registry version, fetched and checksum-verified, loaded with this machine's torch options."""
    from tone.scoring import factory

    return factory.load(registry.fetch(version), **model_options(settings))


def _artifact_path(spec: str, settings: Settings) -> Path | None:
    """The artifact directory behind ``spec``, or None (VADER, a hub id; a registry with nothing approved)."""
    if spec == "rnn":
        return default_model_path(settings, "rnn")
    if spec == "transformer":
        name = settings.transformer_model
        return Path(name).expanduser() if name else default_model_path(settings, "transformer")
    if spec.startswith(REGISTRY_PREFIX) or spec == "registry":
        from tone.registry import Registry

        registry = Registry.from_settings(settings)
        version = spec.removeprefix(REGISTRY_PREFIX) if spec != "registry" else registry.approved_version()
        if version is None:
            raise nothing_approved(settings)
        return registry.fetch(version)
    return None if spec == "vader" else Path(spec).expanduser()


def scorer_languages(spec: str, settings: Settings) -> tuple[str, ...] | None:
    """The languages the model behind ``spec`` reads (its verified manifest), without loading it; None: unknown.

    VADER reads English; an artifact its manifest's ``languages`` (English for one from before they were recorded);
    a default model not trained yet is the English one `tone stream` trains; a plain Hugging Face model is unknown.
    The artifact is checksum-verified here, so a stream refuses a tampered or corrupt model at start (ArtifactError).
    """
    from tone.scoring import artifacts

    if spec == "vader":
        return artifacts.DEFAULT_LANGUAGES
    path = _artifact_path(spec, settings)
    if path is None:
        return None
    if not (path / artifacts.MANIFEST).is_file():
        ours = spec == "rnn" or (spec == "transformer" and not settings.transformer_model)
        return artifacts.DEFAULT_LANGUAGES if ours else None
    try:
        manifest = artifacts.verify(path)
    except ArtifactError as exc:
        if spec == "rnn":
            raise unusable_default_rnn(path, exc) from None
        raise
    return artifacts.manifest_languages(manifest)


def check_routes(routes: Routes, settings: Settings, default: str) -> list[str]:
    """Refuse routes that send a model a language it does not read (ConfigError saying what to do instead).

    ``default``: the spec the routes' ``default`` stands for. ``und`` (no language: emoji, links) may go to any
    model. Returns warnings for models whose languages are unknown (plain Hugging Face models).
    """
    from tone.errors import ConfigError
    from tone.language import DEFAULT_SCORER, UND, WILDCARD

    warnings = []
    for spec in routes.specs():
        actual = default if spec == DEFAULT_SCORER else spec
        reads = scorer_languages(actual, settings)
        languages = [lang for lang in routes.languages_of(spec) if lang != UND]
        if reads is None:
            warnings.append(f"{actual} does not say which languages it reads; it scores {', '.join(languages)}")
            continue
        wrong = [lang for lang in languages if lang == WILDCARD or lang not in reads]
        if wrong:
            msg = (
                f"TONE_ROUTES sends {', '.join(wrong)} to {actual}, which reads {', '.join(reads)} only (its "
                f"manifest's languages): route those languages to a model that reads them (docs/languages.md) or "
                f"leave them out (not scored, still counted by language)"
            )
            raise ConfigError(msg)
    return warnings


def training_mix(spec: str, settings: Settings) -> dict[str, int] | None:
    """Label counts of the data the model behind ``spec`` was trained on (from its manifest), or None.

    None for VADER (not trained), a plain Hugging Face model, or an artifact trained before its manifest recorded
    them. The stream's drift signal compares the live label mix with this.
    """
    from tone.scoring import artifacts

    try:
        path = _artifact_path(spec, settings)
        if path is None or not (path / artifacts.MANIFEST).is_file():
            return None
        counts = artifacts.read_manifest(path).get("data", {}).get("train_label_counts")
    except (ArtifactError, OSError, ValueError) as exc:
        log.warning("no training label mix for %s: %s", spec, exc)
        return None
    return {str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else None
