"""The model registry: immutable, checksummed model versions on a local directory or an S3 prefix (one code path).

Layout under the registry root (``TONE_REGISTRY_URI``)::

    index.json                              statuses, the approved pointer and an event log (the only mutable object)
    versions/<version>/registration.json    kind, metrics, params, sha256 of every file, source, created_at
    versions/<version>/artifact/...         the model artifact (manifest.json, weights, tokenizer files)

A version string is derived from the artifact's content (``rnn-1a2b3c4d5e6f``), so publishing the same weights twice
yields the same version and a version's files never change. Statuses are ``candidate`` -> ``approved`` ->
``archived``; exactly one version is approved at a time. :meth:`Registry.approve` is gated like a pipeline condition
step: the candidate's metric must beat the approved one's by a margin unless forced.

The index is rewritten whole on each change; concurrent writers (two people approving at the same instant) are not
serialised — the registry is meant to have one operator or pipeline writing to it.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from tone.errors import ArtifactError, ToneError
from tone.settings import Settings

log = logging.getLogger(__name__)

INDEX: Final = "index.json"
REGISTRATION: Final = "registration.json"
Status = Literal["candidate", "approved", "archived"]
STATUSES: Final = ("candidate", "approved", "archived")


class RegistryError(ToneError):
    """A registry operation was refused (unknown version, approval gate not met, nothing to roll back to)."""


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


# -- storage: the two backends behind one small interface ----------------------------------------------------------
class Storage(Protocol):
    """Byte storage addressed by '/'-separated keys relative to the registry root."""

    uri: str

    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is none."""

    def write(self, key: str, data: bytes) -> None:
        """Create or replace an object."""

    def put_file(self, key: str, path: Path) -> None:
        """Upload a local file."""

    def get_file(self, key: str, path: Path) -> None:
        """Download an object to a local file."""

    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (recursively), relative to the root."""


class LocalStorage:
    """A directory on a local or mounted file system."""

    def __init__(self, root: Path) -> None:
        """Use ``root`` (created on first write)."""
        self.root = Path(root).expanduser()
        self.uri = str(self.root)

    def read(self, key: str) -> bytes | None:
        """Read a file, None if absent."""
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> None:
        """Write atomically (temp file + rename), so a reader never sees half an index."""
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        tmp.write_bytes(data)
        tmp.replace(path)

    def put_file(self, key: str, path: Path) -> None:
        """Copy a file in."""
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)

    def get_file(self, key: str, path: Path) -> None:
        """Copy a file out."""
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.root / key, path)

    def keys(self, prefix: str) -> list[str]:
        """Files under the prefix directory."""
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())


class S3Storage:
    """An S3 prefix (real S3 or moto)."""

    def __init__(self, uri: str, settings: Settings) -> None:
        """Use ``s3://bucket/prefix`` with a client from the settings."""
        from tone.aws import client, ensure_bucket, split_s3_uri

        self.uri = uri.rstrip("/")
        self.bucket, self.prefix = split_s3_uri(self.uri)
        self.s3 = client(settings, "s3")
        if settings.aws_endpoint_url:
            ensure_bucket(settings, self.bucket)  # a local endpoint (moto) starts with no buckets

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def read(self, key: str) -> bytes | None:
        """GET an object, None on 404 (a missing bucket is an error that names it)."""
        try:
            return bytes(self.s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read())
        except self.s3.exceptions.NoSuchKey:
            return None
        except self.s3.exceptions.NoSuchBucket:
            msg = f"registry bucket {self.bucket!r} does not exist: create it or fix TONE_REGISTRY_URI"
            raise RegistryError(msg) from None

    def write(self, key: str, data: bytes) -> None:
        """PUT an object (a PUT is atomic on S3)."""
        self.s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_file(self, key: str, path: Path) -> None:
        """Upload a file."""
        self.s3.upload_file(str(path), self.bucket, self._key(key))

    def get_file(self, key: str, path: Path) -> None:
        """Download a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.s3.download_file(self.bucket, self._key(key), str(path))

    def keys(self, prefix: str) -> list[str]:
        """List with pagination."""
        out = []
        start = len(self.prefix) + 1 if self.prefix else 0
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            out += [obj["Key"][start:] for obj in page.get("Contents", [])]
        return sorted(out)


def open_storage(uri: str, settings: Settings) -> Storage:
    """The storage backend for ``uri``."""
    if uri.startswith("s3://"):
        return S3Storage(uri, settings)
    return LocalStorage(Path(uri))


# -- the registry ----------------------------------------------------------------------------------------------------
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
    """Publish, list, approve, roll back and fetch model versions."""

    def __init__(self, storage: Storage, settings: Settings) -> None:
        """Wrap a storage backend."""
        self.storage = storage
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: Settings, uri: str | None = None) -> Registry:
        """The registry at ``uri`` (default: ``TONE_REGISTRY_URI``)."""
        return cls(open_storage(uri or settings.registry_uri, settings), settings)

    # index ----------------------------------------------------------------------------------------------------------
    def _index(self) -> dict[str, Any]:
        raw = self.storage.read(INDEX)
        if raw is None:
            return {"versions": {}, "approved": None, "events": []}
        try:
            index: dict[str, Any] = json.loads(raw)
        except json.JSONDecodeError:
            msg = f"registry index {self.storage.uri}/{INDEX} is not JSON: restore it from a backup"
            raise RegistryError(msg) from None
        return index

    def _save_index(self, index: dict[str, Any]) -> None:
        self.storage.write(INDEX, json.dumps(index, indent=2, sort_keys=True).encode())

    def _event(self, index: dict[str, Any], action: str, version: str, **detail: Any) -> None:
        index["events"].append({"at": _now(), "action": action, "version": version, **detail})

    def shadow_version(self) -> str | None:
        """The candidate running streams score in shadow (``tone models shadow``), None when there is none."""
        shadow: str | None = self._index().get("shadow")
        return shadow

    def set_shadow(self, version: str | None) -> str:
        """Make ``version`` the shadow candidate of streams that follow the registry (None: stop shadowing)."""
        index = self._index()
        current = index.get("shadow")
        if version is not None:
            self.get(version)  # exists?
            if version == index.get("approved"):
                msg = f"{version} is the approved version: it scores live already; shadow a candidate instead"
                raise RegistryError(msg)
        if version == current:
            return f"{version or 'nothing'} is already in shadow"
        index["shadow"] = version
        self._event(index, "shadow" if version else "unshadow", version or current or "", previous=current)
        self._save_index(index)
        if version is None:
            return f"stopped shadowing {current}"
        return f"{version} now scores in shadow beside the live model (was {current or 'none'})"

    def approved_version(self) -> str | None:
        """The version the stream should score with (None before the first approval)."""
        approved: str | None = self._index().get("approved")
        return approved

    def registration(self, version: str) -> dict[str, Any]:
        """The immutable registration of ``version``."""
        raw = self.storage.read(f"versions/{version}/{REGISTRATION}")
        if raw is None:
            msg = f"no version {version!r} in the registry at {self.storage.uri}; see `tone models list`"
            raise RegistryError(msg)
        reg: dict[str, Any] = json.loads(raw)
        return reg

    def get(self, version: str) -> ModelVersion:
        """One version with its status."""
        index = self._index()
        if version not in index["versions"]:
            msg = f"no version {version!r} in the registry at {self.storage.uri}; see `tone models list`"
            raise RegistryError(msg)
        return ModelVersion(version, index["versions"][version]["status"], self.registration(version))

    def versions(self) -> list[ModelVersion]:
        """Every version, newest first."""
        index = self._index()
        out = [ModelVersion(v, row["status"], self.registration(v)) for v, row in index["versions"].items()]
        return sorted(out, key=lambda m: (m.registration.get("created_at", ""), m.version), reverse=True)

    def events(self) -> list[dict[str, Any]]:
        """The event log (publish, approve, rollback), oldest first."""
        return list(self._index()["events"])

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
        index = self._index()
        if version in index["versions"]:
            log.info("version %s is already registered (%s)", version, index["versions"][version]["status"])
            return self.get(version)
        for name in [artifacts.MANIFEST, *manifest["files"]]:
            self.storage.put_file(f"versions/{version}/artifact/{name}", artifact_dir / name)
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
        self.storage.write(f"versions/{version}/{REGISTRATION}", json.dumps(registration, indent=2).encode())
        index = self._index()  # re-read: the upload may have taken a while
        index["versions"][version] = {"status": "candidate"}
        self._event(index, "publish", version, source=source)
        self._save_index(index)
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
        index = self._index()
        candidate = self.get(version)
        current = index.get("approved")
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
            index["versions"][current]["status"] = "archived"
        index["versions"][version]["status"] = "approved"
        index["approved"] = version
        if index.get("shadow") == version:
            index["shadow"] = None  # it scores live now
        detail: dict[str, Any] = {"previous": current, "decision": decision, "forced": force, "shadow": shadow}
        if force:
            detail["reason"] = reason
        self._event(index, "approve", version, **detail)
        self._save_index(index)
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
        index = self._index()
        current = index.get("approved")
        if to is None:
            history = [e["version"] for e in index["events"] if e["action"] in ("approve", "rollback")]
            earlier = [v for v in reversed(history) if v != current and v in index["versions"]]
            if not earlier:
                msg = "nothing to roll back to: no other version was ever approved"
                raise RegistryError(msg)
            to = earlier[0]
        self.get(to)  # exists?
        if to == current:
            return f"{to} is already the approved version"
        if current is not None:
            index["versions"][current]["status"] = "archived"
        index["versions"][to]["status"] = "approved"
        index["approved"] = to
        self._event(index, "rollback", to, previous=current)
        self._save_index(index)
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
                    self.storage.get_file(f"versions/{version}/artifact/{name}", tmp / name)
                except Exception as exc:  # noqa: BLE001 - boto and OSError both mean "not there"
                    msg = f"version {version}: cannot download {name} from {self.storage.uri}: {exc}"
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


__all__ = ["STATUSES", "ModelVersion", "Registry", "RegistryError", "Storage", "open_storage"]
