"""The model registry: immutable, checksummed model versions, a candidate in shadow, one approved, behind one protocol.

Backends (``TONE_REGISTRY_URI``, :mod:`tone.registry.backend`): a local directory or ``s3://bucket/prefix`` (the
project's own index, the embedded default), ``sagemaker://GROUP_PREFIX`` (SageMaker Model Registry: a model package
group per scorer kind, ``ModelApprovalStatus`` as the approval, artifacts on S3) and ``mlflow://NAME`` (MLflow's:
a registered model, aliases for the approved and shadow versions). The rules are the same on each, here.

A version string is derived from the artifact's content (``rnn-1a2b3c4d5e6f``), so publishing the same weights twice
yields the same version and a version's files never change. Statuses are ``candidate`` -> ``approved`` ->
``archived``; exactly one version is approved at a time, and at most one candidate is in shadow.
:meth:`Registry.approve` is gated like a pipeline's condition steps: shadow evidence on live traffic, then the
offline metric, unless forced with a reason.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tone.errors import ArtifactError
from tone.registry.backend import INDEX, REGISTRATION, STATUSES, IndexBackend, RegistryBackend, State, Status
from tone.registry.storage import RegistryError, Storage, open_storage
from tone.settings import Settings

log = logging.getLogger(__name__)


def _evidence_summary(evidence: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the event log keeps of a candidate's shadow evidence (tone.aggregates.shadow.evidence_view)."""
    if evidence is None:
        return None
    keep = ("live", "candidate", "n", "agreement", "churn", "flips", "mean_abs_polarity_change")
    return {k: evidence.get(k) for k in keep} | {"languages": {k: v["n"] for k, v in evidence["languages"].items()}}


def _evidence_line(shadow: Mapping[str, Any]) -> str:
    agreement = shadow["agreement"]
    share = "n/a" if agreement is None else f"{agreement:.1%}"
    return f"shadow: {shadow['n']} tweets against {shadow['live']}, {share} agree"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: its immutable registration plus its current status."""

    version: str
    status: Status
    registration: dict[str, Any]

    @property
    def metrics(self) -> dict[str, Any]:
        """Metrics recorded at training time (test/val macro-F1...)."""
        return dict(self.registration.get("metrics") or {})


class Registry:
    """Publish, list, shadow, approve, roll back and fetch model versions (the rules; a backend stores)."""

    def __init__(self, backend: RegistryBackend, settings: Settings) -> None:
        """Wrap a backend (:func:`open_backend`)."""
        self.backend = backend
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: Settings, uri: str | None = None) -> Registry:
        """The registry at ``uri`` (default: ``TONE_REGISTRY_URI``)."""
        return cls(open_backend(uri or settings.registry_uri, settings), settings)

    @property
    def uri(self) -> str:
        """Where the registry is."""
        return self.backend.uri

    def _event(self, action: str, version: str, **detail: Any) -> dict[str, Any]:
        return {"at": _now(), "action": action, "version": version, **detail}

    def _unknown(self, version: str) -> RegistryError:
        return RegistryError(f"no version {version!r} in the registry at {self.uri}; see `tone models list`")

    def shadow_version(self) -> str | None:
        """The candidate running streams score in shadow (``tone models shadow``), None when there is none."""
        return self.backend.state().shadow

    def set_shadow(self, version: str | None) -> str:
        """Make ``version`` the shadow candidate of streams that follow the registry (None: stop shadowing)."""
        state = self.backend.state()
        current = state.shadow
        if version is not None:
            if version not in state.statuses:
                raise self._unknown(version)
            if version == state.approved:
                msg = f"{version} is the approved version: it scores live already; shadow a candidate instead"
                raise RegistryError(msg)
        if version == current:
            return f"{version or 'nothing'} is already in shadow"
        event = self._event("shadow" if version else "unshadow", version or current or "", previous=current)
        self.backend.apply({}, state.approved, version, event)
        if version is None:
            return f"stopped shadowing {current}"
        return f"{version} now scores in shadow beside the live model (was {current or 'none'})"

    def approved_version(self) -> str | None:
        """The version the stream should score with (None before the first approval)."""
        return self.backend.state().approved

    def registration(self, version: str) -> dict[str, Any]:
        """The immutable registration of ``version``."""
        registration = self.backend.registration(version)
        if registration is None:
            raise self._unknown(version)
        return registration

    def get(self, version: str) -> ModelVersion:
        """One version with its status."""
        statuses = self.backend.state().statuses
        if version not in statuses:
            raise self._unknown(version)
        return ModelVersion(version, statuses[version], self.registration(version))

    def versions(self) -> list[ModelVersion]:
        """Every version, newest first."""
        out = [ModelVersion(v, st, self.registration(v)) for v, st in self.backend.state().statuses.items()]
        return sorted(out, key=lambda m: (m.registration.get("created_at", ""), m.version), reverse=True)

    def events(self) -> list[dict[str, Any]]:
        """The event log (publish, shadow, approve, rollback), oldest first."""
        return self.backend.events()

    # writes ---------------------------------------------------------------------------------------------------------
    def publish(self, artifact_dir: Path, *, source: dict[str, Any]) -> ModelVersion:
        """Register a verified artifact as a candidate; publishing an existing version changes nothing.

        The artifact must load and pass the smoke test first (``tone.scoring.smoke``): checksums alone let a
        truncated weights file with a regenerated manifest through.
        """
        from tone.scoring import artifacts
        from tone.scoring.smoke import load_checked

        artifact_dir = Path(artifact_dir)
        manifest = artifacts.verify(artifact_dir)
        load_checked(artifact_dir, self.settings)
        version = manifest["version"]
        state = self.backend.state()
        if version in state.statuses:
            log.info("version %s is already registered (%s)", version, state.statuses[version])
            return self.get(version)
        registration = {
            "version": version,
            "kind": manifest["kind"],
            "labels": manifest["labels"],
            "created_at": _now(),
            "metrics": manifest.get("metrics") or {},
            "params": manifest.get("params") or {},
            "files": {artifacts.MANIFEST: artifacts.sha256_file(artifact_dir / artifacts.MANIFEST)} | manifest["files"],
            "source": source,
        }
        self.backend.add(version, artifact_dir, [artifacts.MANIFEST, *manifest["files"]], registration)
        state = self.backend.state()  # re-read: the upload may have taken a while
        self.backend.apply(
            {version: "candidate"}, state.approved, state.shadow, self._event("publish", version, source=source)
        )
        return ModelVersion(version, "candidate", registration)

    def approve(  # noqa: PLR0913 - the gates and their overrides
        self,
        version: str,
        *,
        force: bool = False,
        reason: str | None = None,
        metric: str | None = None,
        margin: float | None = None,
        evidence: Mapping[str, Any] | None = None,
    ) -> str:
        """Make ``version`` the approved one if it earned it on live traffic and offline.

        Two gates: its shadow ``evidence`` against the live model (tone.aggregates.shadow: at least
        ``approve_min_shadow`` tweets compared, churn at most ``approve_max_churn``), then its metric beats the
        approved version's by ``margin``. ``force`` skips both and needs a ``reason``; the evidence, the decision and
        the reason are recorded in the event log. Returns a one-line description of the decision; raises
        RegistryError when a gate is not met.
        """
        metric = metric or self.settings.approve_metric
        margin = self.settings.approve_margin if margin is None else margin
        if force and not (reason or "").strip():
            msg = f"--force needs --reason TEXT: why {version} goes live without passing the gates (it is recorded)"
            raise RegistryError(msg)
        state = self.backend.state()
        candidate = self.get(version)
        current = state.approved
        if current == version:
            return f"{version} is already the approved version"
        shadow = _evidence_summary(evidence)
        if not force:
            self._check_evidence(version, shadow)
        new_value = candidate.metrics.get(metric)
        decision = "forced" if force else "no approved version yet"
        if current is not None:
            old_value = self.get(current).metrics.get(metric)
            if not force:
                if not isinstance(new_value, int | float):
                    msg = f"{version} has no {metric!r} metric to compare; approve with --force if you must"
                    raise RegistryError(msg)
                if isinstance(old_value, int | float) and new_value < old_value + margin:
                    msg = (
                        f"{version} not approved: {metric} {new_value:.4f} does not beat the approved {current}'s "
                        f"{old_value:.4f} by the margin {margin} (TONE_APPROVE_MARGIN); use --force to override"
                    )
                    raise RegistryError(msg)
                decision = f"{metric} {new_value:.4f} vs {old_value} (+{margin} required)"
        changes: dict[str, Status] = {version: "approved"}
        if current is not None:
            changes[current] = "archived"
        in_shadow = None if state.shadow == version else state.shadow  # it scores live now
        detail: dict[str, Any] = {"previous": current, "decision": decision, "forced": force, "shadow": shadow}
        if force:
            detail["reason"] = reason
        self.backend.apply(changes, version, in_shadow, self._event("approve", version, **detail))
        seen = "no shadow evidence" if shadow is None else _evidence_line(shadow)
        return f"approved {version} (was {current or 'none'}): {decision}; {seen}"

    def _check_evidence(self, version: str, shadow: Mapping[str, Any] | None) -> None:
        """Refuse a candidate without enough shadow evidence, or whose labels churn too much."""
        least = self.settings.approve_min_shadow
        most = self.settings.approve_max_churn
        n = 0 if shadow is None else int(shadow["n"])
        if n < least:
            msg = (
                f"{version} not approved: {n} tweets of shadow evidence, at least {least} needed "
                f"(TONE_APPROVE_MIN_SHADOW). Shadow it on live traffic first (tone models shadow {version}, or "
                f"TONE_SHADOW_SCORER=registry:{version} for a stream), watch tone models compare, then approve; or "
                "--force --reason TEXT"
            )
            raise RegistryError(msg)
        churn = shadow["churn"] if shadow is not None else None
        if churn is not None and churn > most:
            msg = (
                f"{version} not approved: {churn:.1%} of {n} shadowed tweets change label against "
                f"{shadow['live'] if shadow else '?'} (at most {most:.1%}, TONE_APPROVE_MAX_CHURN); read the flips "
                "(tone models compare) and --force --reason TEXT if they are improvements"
            )
            raise RegistryError(msg)

    def rollback(self, to: str | None = None) -> str:
        """Approve the previously approved version again (or ``to``), archiving the current one. No gate."""
        state = self.backend.state()
        current = state.approved
        if to is None:
            history = [e["version"] for e in self.backend.events() if e["action"] in ("approve", "rollback")]
            earlier = [v for v in reversed(history) if v != current and v in state.statuses]
            if not earlier:
                msg = "nothing to roll back to: no other version was ever approved"
                raise RegistryError(msg)
            to = earlier[0]
        self.get(to)  # exists?
        if to == current:
            return f"{to} is already the approved version"
        changes: dict[str, Status] = {to: "approved"}
        if current is not None:
            changes[current] = "archived"
        shadow = None if state.shadow == to else state.shadow
        self.backend.apply(changes, to, shadow, self._event("rollback", to, previous=current))
        return f"rolled back to {to} (was {current or 'none'})"

    # reads of artifacts ---------------------------------------------------------------------------------------------
    def fetch(self, version: str, cache_dir: Path | None = None) -> Path:
        """Download ``version`` into the local cache and verify every checksum; returns the artifact directory.

        A cached copy is re-verified and reused. Raises ArtifactError for a corrupt or incomplete version.
        """
        from tone.scoring import artifacts

        cache = Path(cache_dir or self.settings.model_dir / "registry")
        target = cache / version
        registration = self.registration(version)
        if target.is_dir():
            try:
                if artifacts.verify(target)["version"] == version:
                    return target
            except ArtifactError:
                pass
            shutil.rmtree(target, ignore_errors=True)
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=cache))
        try:
            for name, digest in registration["files"].items():
                try:
                    self.backend.get_file(version, name, tmp / name)
                except Exception as exc:  # noqa: BLE001 - boto, MLflow and OSError all mean "not there"
                    msg = f"version {version}: cannot download {name} from {self.uri}: {exc}"
                    raise ArtifactError(msg) from None
                if artifacts.sha256_file(tmp / name) != digest:
                    msg = f"version {version}: {name} does not match its registered sha256 (corrupt or tampered)"
                    raise ArtifactError(msg)
            manifest = artifacts.verify(tmp)
            if manifest["version"] != version:
                msg = f"version {version}: the artifact's manifest says {manifest['version']}"
                raise ArtifactError(msg)
            try:
                tmp.rename(target)
            except OSError:  # another worker finished the same download first: use its copy
                shutil.rmtree(tmp, ignore_errors=True)
                artifacts.verify(target)
            return target
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def open_backend(uri: str, settings: Settings) -> RegistryBackend:
    """The backend for ``uri``: ``sagemaker://``, ``mlflow://``, else the project's index on a directory or S3."""
    if uri.startswith("sagemaker://"):
        from tone.registry.sagemaker import SageMakerBackend

        return SageMakerBackend(uri, settings)
    if uri.startswith("mlflow://"):
        from tone.registry.mlflow import MlflowBackend

        return MlflowBackend(uri, settings)
    return IndexBackend(open_storage(uri, settings))


__all__ = [
    "INDEX",
    "REGISTRATION",
    "STATUSES",
    "ModelVersion",
    "Registry",
    "RegistryBackend",
    "RegistryError",
    "State",
    "Storage",
    "open_backend",
    "open_storage",
]
