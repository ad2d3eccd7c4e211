"""What a registry backend keeps, behind one protocol.

Versions with a status, the approved and shadow pointers, the immutable registrations and artifact files, and an
event log.

The rules (the approval gates, rollback, checksums) live once, in :class:`tone.registry.Registry`; a backend only
stores. Three backends: the project's own index (``index.json`` on a directory or S3, the embedded default: this
module), SageMaker Model Registry (:mod:`tone.registry.sagemaker`) and MLflow's (:mod:`tone.registry.mlflow`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from tone.registry.storage import RegistryError, Storage

INDEX: Final = "index.json"
REGISTRATION: Final = "registration.json"
Status = Literal["candidate", "approved", "archived"]
STATUSES: Final = ("candidate", "approved", "archived")


@dataclass
class State:
    """Every version's status and the two pointers, as one read sees them."""

    statuses: dict[str, Status] = field(default_factory=dict)
    approved: str | None = None
    shadow: str | None = None


class RegistryBackend(Protocol):
    """Where a registry's versions, pointers, files and events are kept."""

    uri: str

    def state(self) -> State:
        """The statuses and pointers now."""

    def registration(self, version: str) -> dict[str, Any] | None:
        """The immutable registration of ``version``, None when there is none."""

    def add(self, version: str, artifact_dir: Path, names: list[str], registration: dict[str, Any]) -> None:
        """Upload the artifact's ``names`` (relative to ``artifact_dir``); register ``version`` as a candidate."""

    def apply(
        self, statuses: dict[str, Status], approved: str | None, shadow: str | None, event: dict[str, Any]
    ) -> None:
        """Set the changed ``statuses``, the two pointers, and append ``event`` to the log."""

    def events(self) -> list[dict[str, Any]]:
        """The event log, oldest first."""

    def get_file(self, version: str, name: str, path: Path) -> None:
        """Download one of ``version``'s artifact files to ``path``."""


class VersionFiles:
    """The versions' files on a Storage: ``versions/<version>/registration.json`` and ``.../artifact/<name>``.

    The layout the index backend and the SageMaker backend (whose files are on S3) share.
    """

    def __init__(self, storage: Storage) -> None:
        """Keep the files in ``storage``."""
        self.storage = storage

    def registration(self, version: str) -> dict[str, Any] | None:
        """The registration, None when there is none."""
        raw = self.storage.read(f"versions/{version}/{REGISTRATION}")
        return None if raw is None else dict(json.loads(raw))

    def put(self, version: str, artifact_dir: Path, names: list[str], registration: dict[str, Any]) -> None:
        """The artifact's files first, then the registration."""
        for name in names:
            self.storage.put_file(f"versions/{version}/artifact/{name}", artifact_dir / name)
        self.storage.write(f"versions/{version}/{REGISTRATION}", json.dumps(registration, indent=2).encode())

    def get_file(self, version: str, name: str, path: Path) -> None:
        """One artifact file."""
        self.storage.get_file(f"versions/{version}/artifact/{name}", path)


class IndexBackend:
    """The project's own registry: one ``index.json`` (statuses, pointers, events) beside the versions' files.

    Layout under the root (``TONE_REGISTRY_URI``: a directory or ``s3://bucket/prefix``)::

        index.json                              statuses, the approved and shadow pointers, the event log
        versions/<version>/registration.json    kind, metrics, params, sha256 of every file, source, created_at
        versions/<version>/artifact/...         the model artifact (manifest.json, weights, tokenizer files)

    The index is rewritten whole on each change; concurrent writers (two people approving at the same instant) are
    not serialised: this registry is meant to have one operator or pipeline writing to it. The SageMaker and MLflow
    backends keep statuses in services that do serialise them.
    """

    def __init__(self, storage: Storage) -> None:
        """Keep the registry in ``storage``."""
        self.storage = storage
        self.files = VersionFiles(storage)
        self.uri = storage.uri

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

    def state(self) -> State:
        """From the index."""
        index = self._index()
        statuses = {v: row["status"] for v, row in index["versions"].items()}
        return State(statuses, index.get("approved"), index.get("shadow"))

    def registration(self, version: str) -> dict[str, Any] | None:
        """From ``versions/<version>/registration.json``."""
        return self.files.registration(version)

    def add(self, version: str, artifact_dir: Path, names: list[str], registration: dict[str, Any]) -> None:
        """Files first, then the registration, then the index entry: a reader never sees a version half-there."""
        self.files.put(version, artifact_dir, names, registration)
        index = self._index()  # re-read: the upload may have taken a while
        index["versions"][version] = {"status": "candidate"}
        self.storage.write(INDEX, json.dumps(index, indent=2, sort_keys=True).encode())

    def apply(
        self, statuses: dict[str, Status], approved: str | None, shadow: str | None, event: dict[str, Any]
    ) -> None:
        """One rewrite of the index."""
        index = self._index()
        for version, status in statuses.items():
            index["versions"][version] = {"status": status}
        index["approved"], index["shadow"] = approved, shadow
        index["events"].append(event)
        self.storage.write(INDEX, json.dumps(index, indent=2, sort_keys=True).encode())

    def events(self) -> list[dict[str, Any]]:
        """From the index."""
        return list(self._index()["events"])

    def get_file(self, version: str, name: str, path: Path) -> None:
        """From ``versions/<version>/artifact/``."""
        self.files.get_file(version, name, path)
