"""MLflow's model registry as the registry's backend (``TONE_REGISTRY_URI=mlflow://REGISTERED_MODEL``).

The tracking server is ``TONE_MLFLOW_TRACKING_URI`` (``tone stack up`` with ``TONE_STACK_MLFLOW=true`` runs one on
SQLite). One registered model holds every version:

- each published version is an MLflow model version whose run (experiment ``<name>-registry``) logged the artifact's
  files under ``artifact/``; tags ``tone.version`` (the content-derived version string), ``tone.status``
  (candidate, approved, archived) and ``tone.registration`` (the registration JSON);
- the approved version is the alias ``champion``, the shadow candidate the alias ``challenger`` (MLflow's own
  convention: ``models:/NAME@champion`` loads what the stream scores with);
- the event log is the registered model's tags ``tone.event.<time>`` (one per event: appends never race).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tone.errors import ConfigError
from tone.registry.backend import State, Status
from tone.registry.storage import RegistryError

if TYPE_CHECKING:
    from tone.settings import Settings

APPROVED: Final = "champion"
SHADOW: Final = "challenger"
EVENT: Final = "tone.event."


class MlflowBackend:
    """Versions, aliases and events in an MLflow model registry (see the module docstring)."""

    def __init__(self, uri: str, settings: Settings) -> None:
        """``mlflow://NAME`` on the tracking server ``TONE_MLFLOW_TRACKING_URI``."""
        # A SageMaker plugin in the same environment (sagemaker-mlflow) adds a request-header provider that logs a
        # warning on every call to a tracking server that is not SageMaker's; and artifact downloads draw progress
        # bars into the stream's log. Both off unless the user asks otherwise.
        logging.getLogger("mlflow.tracking.request_header.registry").setLevel(logging.ERROR)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        from mlflow import MlflowClient

        self.uri = uri
        self.name = uri.removeprefix("mlflow://").strip("/")
        tracking = settings.mlflow_tracking_uri
        if not tracking:
            msg = (
                f"TONE_REGISTRY_URI {uri!r} needs the MLflow tracking server: set TONE_MLFLOW_TRACKING_URI "
                "(e.g. http://127.0.0.1:5050, what `TONE_STACK_MLFLOW=true tone stack up` runs)"
            )
            raise ConfigError(msg)
        self.tracking = tracking
        self.client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)

    def _model(self) -> Any | None:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(self.name)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code):
                return None
            raise

    def _versions(self) -> dict[str, Any]:
        """Our version string -> its MLflow model version (those without the tag are someone else's: left out)."""
        found = self.client.search_model_versions(f"name = '{self.name}'", max_results=10_000)
        return {mv.tags["tone.version"]: mv for mv in found if "tone.version" in mv.tags}

    def state(self) -> State:
        """Statuses from the versions' tags, the pointers from the aliases."""
        model = self._model()
        if model is None:
            return State()
        versions = self._versions()
        number_to_version = {mv.version: v for v, mv in versions.items()}
        statuses: dict[str, Status] = {v: mv.tags.get("tone.status", "candidate") for v, mv in versions.items()}
        aliases = dict(model.aliases or {})
        return State(
            statuses,
            number_to_version.get(str(aliases.get(APPROVED))),
            number_to_version.get(str(aliases.get(SHADOW))),
        )

    def registration(self, version: str) -> dict[str, Any] | None:
        """From the version's tag."""
        if self._model() is None:
            return None
        mv = self._versions().get(version)
        return None if mv is None else dict(json.loads(mv.tags["tone.registration"]))

    def add(self, version: str, artifact_dir: Path, names: list[str], registration: dict[str, Any]) -> None:
        """A run that logs the files, then a model version of it (tagged: a candidate)."""
        from mlflow.exceptions import MlflowException

        if self._model() is None:
            try:
                self.client.create_registered_model(self.name, description="tweet-tone scorers (tone models)")
            except MlflowException as exc:
                if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                    raise
        if version in self._versions():
            return
        experiment = self.client.get_experiment_by_name(f"{self.name}-registry")
        experiment_id = (
            experiment.experiment_id if experiment else self.client.create_experiment(f"{self.name}-registry")
        )
        run = self.client.create_run(experiment_id, run_name=version, tags={"tone.version": version})
        with tempfile.TemporaryDirectory(prefix="tone-mlflow-") as tmp:
            staged = Path(tmp) / "artifact"
            for name in names:
                (staged / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(artifact_dir / name, staged / name)
            self.client.log_artifacts(run.info.run_id, str(staged), artifact_path="artifact")
        self.client.set_terminated(run.info.run_id)
        tags = {
            "tone.version": version,
            "tone.status": "candidate",
            "tone.registration": json.dumps(registration),
        }
        self.client.create_model_version(
            self.name, f"{run.info.artifact_uri}/artifact", run_id=run.info.run_id, tags=tags, description=version
        )

    def apply(
        self, statuses: dict[str, Status], approved: str | None, shadow: str | None, event: dict[str, Any]
    ) -> None:
        """Status tags, then the aliases (champion last: the stream follows it), then the event tag."""
        versions = self._versions()
        missing = [v for v in [*statuses, approved, shadow] if v is not None and v not in versions]
        if missing:
            msg = f"no model version for {', '.join(missing)} in {self.uri}"
            raise RegistryError(msg)
        for version, status in statuses.items():
            self.client.set_model_version_tag(self.name, versions[version].version, "tone.status", status)
        model = self._model()
        aliases = dict(model.aliases or {}) if model is not None else {}
        for alias, pointer in ((SHADOW, shadow), (APPROVED, approved)):
            if pointer is None:
                if alias in aliases:
                    self.client.delete_registered_model_alias(self.name, alias)
            elif str(aliases.get(alias)) != versions[pointer].version:
                self.client.set_registered_model_alias(self.name, alias, versions[pointer].version)
        self.client.set_registered_model_tag(self.name, f"{EVENT}{time.time_ns():020d}", json.dumps(event))

    def events(self) -> list[dict[str, Any]]:
        """The event tags, in the order written."""
        model = self._model()
        if model is None:
            return []
        tags = dict(model.tags or {})
        return [json.loads(tags[k]) for k in sorted(k for k in tags if k.startswith(EVENT))]

    def get_file(self, version: str, name: str, path: Path) -> None:
        """From the version's run artifacts."""
        from mlflow.artifacts import download_artifacts

        mv = self._versions().get(version)
        if mv is None:
            msg = f"no model version for {version} in {self.uri}"
            raise RegistryError(msg)
        with tempfile.TemporaryDirectory(prefix="tone-mlflow-") as tmp:
            local = download_artifacts(
                run_id=mv.run_id, artifact_path=f"artifact/{name}", dst_path=tmp, tracking_uri=self.tracking
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(local, path)
