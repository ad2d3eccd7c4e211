"""Hot reload: between micro-batches, follow the registry's approved version without restarting the query.

The driver checks the registry at most every ``model_refresh_s``. A new approved version is fetched, its checksums
verified and a few tweets smoke-scored *on the driver* before the job's scorer spec becomes ``registry:<version>``;
each Spark task then loads that pinned version (fetching and verifying it again on its own machine) on its next
batch. A version that fails any check is refused with an error line and remembered, and the old model keeps
scoring; it is tried again only once the registry approves something else.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tone.scoring.kinds import REGISTRY_PREFIX
from tone.settings import Settings

log = logging.getLogger(__name__)

FALLBACK = "rnn"


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
        """The spec to start with: the approved version if it verifies, else the default RNN."""
        self._last_check = self.clock()
        spec = self._try(self._approved(), current=None)
        if spec is None:
            log.warning("no usable approved model in %s: starting with %s", self.settings.registry_uri, FALLBACK)
            self.events.append(RefreshEvent(time.time(), "start", None, FALLBACK))
            return FALLBACK
        self.events.append(RefreshEvent(time.time(), "start", spec.removeprefix(REGISTRY_PREFIX)))
        return spec

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

    def _try(self, version: str | None, *, current: str | None) -> str | None:
        if version is None or version in self.refused:
            return None
        spec = f"{REGISTRY_PREFIX}{version}"
        if spec == current:
            return None
        try:
            self.verify(version)
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with a version, the old model keeps scoring
            self.refused.add(version)
            keep = current or FALLBACK
            log.error("model refresh: REFUSED version %s: %s; still scoring with %s", version, exc, keep)
            self.events.append(RefreshEvent(time.time(), "refuse", version, str(exc)))
            return None
        if current is not None:
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
