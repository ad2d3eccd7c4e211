"""Hot reload: between micro-batches, follow the registry's approved version without restarting the query.

The driver checks the registry at most every ``model_refresh_s``. A new approved version is fetched, its checksums
verified and a few tweets smoke-scored *on the driver* before the job's scorer spec becomes ``registry:<version>``;
each Spark task then loads that pinned version (fetching and verifying it again on its own machine) on its next
batch. A version that fails any check is refused with an error line and remembered, and the old model keeps
scoring; it is tried again only once the registry approves something else. At start there is no old model: nothing
approved, or an approved version that fails, stops the stream with what to do (no other model is substituted).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tone.errors import ArtifactError
from tone.scoring.kinds import REGISTRY_PREFIX
from tone.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class RefreshEvent:
    """One decision of the refresher, kept for the job's report and the tests."""

    at: float
    action: str  # "start" | "swap" | "refuse"
    version: str | None
    detail: str = ""


@dataclass
class ModelRefresher:
    """Decides which scorer spec the stream uses; see the module docstring."""

    settings: Settings
    clock: Callable[[], float] = time.monotonic
    registry: Any = None
    routed: list[str] = field(default_factory=list)  # languages the routes send to the approved model
    refused: set[str] = field(default_factory=set)
    events: list[RefreshEvent] = field(default_factory=list)
    _last_check: float = -math.inf

    def __post_init__(self) -> None:
        """Open the configured registry unless one was given."""
        if self.registry is None:
            from tone.registry import Registry

            self.registry = Registry.from_settings(self.settings)

    def initial(self) -> str:
        """The spec to start with: the approved version, verified.

        Fail closed: nothing approved is a ConfigError, an approved version that does not verify, load or smoke-score
        an ArtifactError, each saying what to do; no other model is started instead.
        """
        from tone.scoring.loader import nothing_approved

        self._last_check = self.clock()
        version = self.registry.approved_version()
        if version is None:
            raise nothing_approved(self.settings)
        try:
            self.verify(version)
        except Exception as exc:
            msg = (
                f"the approved version {version} in the registry at {self.settings.registry_uri} cannot be used "
                f"({exc}): roll back (tone models rollback) or approve another; no other model is used instead"
            )
            raise ArtifactError(msg) from None
        self.events.append(RefreshEvent(time.time(), "start", version))
        return f"{REGISTRY_PREFIX}{version}"

    def check(self, current: str) -> str | None:
        """Between batches: a new spec to switch to, or None to keep ``current``."""
        if self.clock() - self._last_check < self.settings.model_refresh_s:
            return None
        self._last_check = self.clock()
        return self._try(self._approved(), current=current)

    def _approved(self) -> str | None:
        try:
            version: str | None = self.registry.approved_version()
        except Exception as exc:  # noqa: BLE001 - an unreachable registry must not stop the stream
            log.error(
                "model refresh: cannot read the registry at %s (%s); keeping the current model",
                self.settings.registry_uri,
                exc,
            )
            return None
        return version

    def _try(self, version: str | None, *, current: str) -> str | None:
        if version is None or version in self.refused:
            return None  # nothing approved any more (the index was edited), or refused before: keep the one running
        spec = f"{REGISTRY_PREFIX}{version}"
        if spec == current:
            return None
        try:
            self.verify(version)
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with a version, the old model keeps scoring
            self.refused.add(version)
            log.error("model refresh: REFUSED version %s: %s; still scoring with %s", version, exc, current)
            self.events.append(RefreshEvent(time.time(), "refuse", version, str(exc)))
            return None
        log.info("model refresh: %s -> %s", current, spec)
        self.events.append(RefreshEvent(time.time(), "swap", version, f"from {current}"))
        return spec

    def verify(self, version: str) -> None:
        """Fetch with checksums, load, check it reads the routed languages, and smoke-score; raises on any failure."""
        from tone.language import UND, WILDCARD
        from tone.scoring.loader import load_registered
        from tone.scoring.smoke import smoke_test

        scorer = load_registered(self.registry, version, self.settings)
        if scorer.version != version:
            msg = f"loaded model reports version {scorer.version}"
            raise ValueError(msg)
        reads = scorer.languages
        unread = [lang for lang in self.routed if lang != UND and (lang == WILDCARD or lang not in (reads or ()))]
        if reads is not None and unread:
            msg = f"it reads {', '.join(reads)}, and TONE_ROUTES sends it {', '.join(unread)}"
            raise ValueError(msg)
        smoke_test(scorer)


@dataclass
class ShadowFollower:
    """Decides the stream's shadow candidate (``TONE_SHADOW_SCORER``; tone.aggregates.shadow has the evidence).

    ``none``: no shadow. A scorer spec: that candidate. ``registry`` (or empty, for a stream that follows the
    registry): the registry's shadow version (``tone models shadow``), checked between batches like the approved one.
    A candidate is loaded and smoke-scored on the driver first; one that fails there, or that a task drops (it failed
    to load or raised on a worker), is refused with its reason and not tried again until the setting or the registry
    names another: live scoring never waits for it.
    """

    settings: Settings
    follows_registry: bool  # the stream's scorer follows the registry (scorer ``registry``)
    clock: Callable[[], float] = time.monotonic
    registry: Any = None
    refused: dict[str, str] = field(default_factory=dict)  # spec -> why
    events: list[RefreshEvent] = field(default_factory=list)
    _last_check: float = -math.inf

    @property
    def from_registry(self) -> bool:
        """Whether the candidate is the registry's shadow version."""
        mode = self.settings.shadow_scorer
        return mode == "registry" or (mode == "" and self.follows_registry)

    def initial(self, live: str) -> str:
        """The spec to start shadowing with ("" for none)."""
        mode = self.settings.shadow_scorer
        if mode == "none" or (mode == "" and not self.follows_registry):
            return ""
        self._last_check = self.clock()
        wanted = self._registry_spec() if self.from_registry else mode
        return self._try(wanted, current="", live=live) or ""

    def check(self, current: str, live: str) -> str | None:
        """Between batches: a new spec ("" to stop shadowing), or None to keep ``current``."""
        if not self.from_registry or self.clock() - self._last_check < self.settings.model_refresh_s:
            return None
        self._last_check = self.clock()
        return self._try(self._registry_spec(), current=current, live=live)

    def drop(self, spec: str, why: str) -> None:
        """A task could not use ``spec``: stop shadowing it (until another candidate is named)."""
        self.refused[spec] = why
        log.error("shadow: DROPPED %s: %s; live scoring goes on", spec, why)
        self.events.append(RefreshEvent(time.time(), "drop", spec, why))

    def _registry_spec(self) -> str | None:
        try:
            if self.registry is None:
                from tone.registry import Registry

                self.registry = Registry.from_settings(self.settings)
            version: str | None = self.registry.shadow_version()
        except Exception as exc:  # noqa: BLE001 - an unreachable registry must not stop the stream
            log.error("shadow: cannot read the registry at %s (%s)", self.settings.registry_uri, exc)
            return None
        return f"{REGISTRY_PREFIX}{version}" if version else ""

    def _try(self, wanted: str | None, *, current: str, live: str) -> str | None:
        if wanted is None:
            return None  # the registry could not be read
        if wanted in ("", live):
            return "" if current else None  # nothing in shadow, or the candidate went live
        if wanted == current:
            return None
        if wanted in self.refused:
            return "" if current else None
        try:
            self._verify(wanted)
        except Exception as exc:  # noqa: BLE001 - a candidate that cannot score is refused, never fatal
            self.refused[wanted] = str(exc)
            log.error("shadow: REFUSED %s: %s; live scoring goes on without a shadow", wanted, exc)
            self.events.append(RefreshEvent(time.time(), "refuse", wanted, str(exc)))
            return "" if current else None
        log.info("shadow: %s -> %s", current or "none", wanted)
        self.events.append(RefreshEvent(time.time(), "swap", wanted, f"from {current or 'none'}"))
        return wanted

    def _verify(self, spec: str) -> None:
        from tone.scoring.loader import load_scorer
        from tone.scoring.smoke import smoke_test

        smoke_test(load_scorer(spec, self.settings))
