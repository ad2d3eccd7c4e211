"""An MLflow tracking server on loopback: SQLite backend, artifacts in the stack's directory.

For the MLflow registry backend (``TONE_REGISTRY_URI=mlflow://NAME``); ``tone stack up`` starts it with
``TONE_STACK_MLFLOW=true``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import sys
import urllib.request
from pathlib import Path

from devstack.process import Node
from tone.settings import env_name


class MlflowNode(Node):
    """``mlflow server`` with a SQLite backend store, serving its artifacts itself."""

    def __init__(self, port: int, directory: Path) -> None:
        """Listen on ``port``; keep its database and artifacts under ``directory``."""
        self.name, self.port, self.port_setting = "mlflow", port, env_name("stack_mlflow_port")
        self.directory = directory

    @property
    def address(self) -> str:
        """The tracking URI."""
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        """One worker (the stack runs on small machines); no telemetry (the machine may be offline)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{self.directory / 'mlflow.db'}",
            "--artifacts-destination", str(self.directory / "artifacts"),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip
        return cmd, dict(os.environ) | {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}

    def healthy(self) -> bool:
        """Its health endpoint answers."""
        with urllib.request.urlopen(f"{self.address}/health", timeout=2) as resp:  # noqa: S310
            return bool(resp.status == 200)

    def software(self) -> str:
        """MLflow and its version."""
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return f"mlflow {importlib.metadata.version('mlflow')}"
        return "mlflow"
