"""SageMaker Model Registry as the registry's backend (``TONE_REGISTRY_URI=sagemaker://GROUP_PREFIX``).

- A model package group per scorer kind, ``<prefix>-rnn`` and ``<prefix>-transformer`` (created on first publish);
  each published version is a model package in its kind's group, with the version string as its
  ``ModelPackageDescription`` and in ``CustomerMetadataProperties`` (``tone_version``, ``tone_kind``).
- The approval is the package's ``ModelApprovalStatus``: ``PendingManualApproval`` (candidate), ``Approved``,
  ``Rejected`` (archived); ``ApprovalDescription`` says why (the gate's decision, or the reason of a forced approval).
  Approving in SageMaker Studio works too: the approved package is the one the stream loads (the newest if several).
- Artifacts, registrations, the event log (one object per event: appends never race) and the shadow pointer (the
  registry has no such status) on S3 under ``s3://TONE_SAGEMAKER_BUCKET/<prefix>-registry/``, the same layout as the
  project's own index.

No ``InferenceSpecification`` is set: the stream, not a SageMaker endpoint, serves the model.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tone.errors import ConfigError
from tone.registry.backend import State, Status, VersionFiles
from tone.registry.storage import RegistryError, S3Storage
from tone.scoring.kinds import MODEL_KINDS

if TYPE_CHECKING:
    from tone.settings import Settings

log = logging.getLogger(__name__)

_TO_SAGEMAKER: Final[dict[str, str]] = {
    "candidate": "PendingManualApproval",
    "approved": "Approved",
    "archived": "Rejected",
}
_FROM_SAGEMAKER: Final[dict[str, Status]] = {
    "PendingManualApproval": "candidate",
    "Approved": "approved",
    "Rejected": "archived",
}
_GROUP_NAME: Final = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,40}$")  # leaves room for "-transformer"
SHADOW: Final = "shadow.json"


class SageMakerBackend:
    """Versions and approvals in SageMaker Model Registry, files on S3 (see the module docstring)."""

    def __init__(self, uri: str, settings: Settings) -> None:
        """``sagemaker://GROUP_PREFIX``; artifacts in ``TONE_SAGEMAKER_BUCKET``."""
        from tone.aws import client

        self.uri = uri
        self.prefix = uri.removeprefix("sagemaker://").strip("/")
        if not _GROUP_NAME.match(self.prefix):
            msg = (
                f"TONE_REGISTRY_URI {uri!r}: the group prefix must be 1-41 letters, digits and hyphens (SageMaker's "
                "model package group names), e.g. sagemaker://tone"
            )
            raise ConfigError(msg)
        if not settings.sagemaker_bucket:
            msg = f"TONE_REGISTRY_URI {uri!r} keeps the artifacts on S3: set TONE_SAGEMAKER_BUCKET to a bucket"
            raise ConfigError(msg)
        self.files = S3Storage(f"s3://{settings.sagemaker_bucket}/{self.prefix}-registry", settings)
        self.versions = VersionFiles(self.files)
        self.sm = client(settings, "sagemaker")

    def group(self, kind: str) -> str:
        """The model package group of a scorer kind."""
        return f"{self.prefix}-{kind}"

    def _packages(self) -> list[dict[str, Any]]:
        """Every package of the kinds' groups (a group not created yet has none), oldest first."""
        out: list[dict[str, Any]] = []
        for kind in MODEL_KINDS:
            token = None
            while True:
                args: dict[str, Any] = {"ModelPackageGroupName": self.group(kind), "MaxResults": 100}
                if token:
                    args["NextToken"] = token
                try:
                    page = self.sm.list_model_packages(**args)
                except self.sm.exceptions.ClientError as exc:
                    if "does not exist" in str(exc) or "not found" in str(exc).lower():
                        break
                    raise
                out += page.get("ModelPackageSummaryList", [])
                token = page.get("NextToken")
                if not token:
                    break
        return sorted(out, key=lambda p: (str(p.get("CreationTime", "")), p.get("ModelPackageArn", "")))

    def _by_version(self) -> dict[str, dict[str, Any]]:
        return {p["ModelPackageDescription"]: p for p in self._packages() if p.get("ModelPackageDescription")}

    def state(self) -> State:
        """Statuses from the packages' approval; the shadow pointer from S3."""
        statuses: dict[str, Status] = {}
        approved = []
        for version, package in self._by_version().items():
            status = _FROM_SAGEMAKER.get(package.get("ModelApprovalStatus", ""), "candidate")
            statuses[version] = status
            if status == "approved":
                approved.append(version)
        if len(approved) > 1:
            log.warning("SageMaker registry %s: %d packages are Approved; the newest, %s, is live", self.uri,
                        len(approved), approved[-1])  # fmt: skip
        raw = self.files.read(SHADOW)
        shadow = json.loads(raw).get("version") if raw else None
        return State(statuses, approved[-1] if approved else None, shadow)

    def registration(self, version: str) -> dict[str, Any] | None:
        """From S3."""
        return self.versions.registration(version)

    def add(self, version: str, artifact_dir: Path, names: list[str], registration: dict[str, Any]) -> None:
        """Files and registration on S3, then the model package (PendingManualApproval) in its kind's group."""
        self.versions.put(version, artifact_dir, names, registration)
        kind = registration["kind"]
        group = self.group(kind)
        try:
            self.sm.describe_model_package_group(ModelPackageGroupName=group)
        except self.sm.exceptions.ClientError:
            self.sm.create_model_package_group(
                ModelPackageGroupName=group, ModelPackageGroupDescription=f"tweet-tone {kind} scorers"
            )
        if version in self._by_version():
            return  # a publish that stopped after creating the package: it is there
        self.sm.create_model_package(
            ModelPackageGroupName=group,
            ModelPackageDescription=version,
            ModelApprovalStatus="PendingManualApproval",
            CustomerMetadataProperties=self._metadata(version, kind),
        )

    @staticmethod
    def _metadata(version: str, kind: str) -> dict[str, str]:
        # Passed whole on every update: UpdateModelPackage merges it, moto replaces it.
        return {"tone_version": version, "tone_kind": kind}

    def apply(  # the approved pointer is the package whose status is Approved
        self,
        statuses: dict[str, Status],
        approved: str | None,
        shadow: str | None,
        event: dict[str, Any],  # noqa: ARG002
    ) -> None:
        """Each changed status on its package (archived first: at most one Approved), the shadow pointer, the event."""
        packages = self._by_version()
        missing = [v for v in statuses if v not in packages]
        if missing:
            msg = f"no model package for {', '.join(missing)} in {self.uri}"
            raise RegistryError(msg)
        why = json.dumps({k: event[k] for k in ("action", "decision", "reason") if event.get(k)})[:1024]
        for version, status in sorted(statuses.items(), key=lambda kv: kv[1] == "approved"):
            package = packages[version]
            if _FROM_SAGEMAKER.get(package.get("ModelApprovalStatus", "")) == status:
                continue
            kind = package["ModelPackageGroupName"].removeprefix(f"{self.prefix}-")
            self.sm.update_model_package(
                ModelPackageArn=package["ModelPackageArn"],
                ModelApprovalStatus=_TO_SAGEMAKER[status],
                ApprovalDescription=why,
                CustomerMetadataProperties=self._metadata(version, kind),
            )
        current = self.files.read(SHADOW)
        if (json.loads(current).get("version") if current else None) != shadow:
            self.files.write(SHADOW, json.dumps({"version": shadow}).encode())
        self.files.write(f"events/{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json", json.dumps(event).encode())

    def events(self) -> list[dict[str, Any]]:
        """The event objects on S3, in the order written."""
        out = []
        for key in self.files.keys("events"):
            raw = self.files.read(key)
            if raw is not None:
                out.append(json.loads(raw))
        return out

    def get_file(self, version: str, name: str, path: Path) -> None:
        """From S3."""
        self.versions.get_file(version, name, path)
