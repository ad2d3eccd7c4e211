"""The local AWS endpoint: ``moto_server``.

S3 and SageMaker's control plane, enough for the tuning and registry code.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import sys
import urllib.request
from pathlib import Path

from devstack.process import Node
from tone.errors import StackError
from tone.settings import env_name


def moto_command() -> list[str]:
    """Command line of the moto server installed next to this interpreter."""
    if importlib.util.find_spec("moto") is None:
        msg = 'moto is missing: install with: pip install -e ".[stack]"'
        raise StackError(msg)
    script = Path(sys.executable).parent / "moto_server"
    return [str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]


class MotoNode(Node):
    """moto_server on loopback."""

    def __init__(self, port: int) -> None:
        """Listen on ``port``."""
        self.name, self.port, self.port_setting = "moto", port, env_name("stack_moto_port")

    @property
    def address(self) -> str:
        """AWS endpoint URL."""
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        """moto_server bound to loopback."""
        return [*moto_command(), "-H", "127.0.0.1", "-p", str(self.port)], dict(os.environ)

    def healthy(self) -> bool:
        """Its data endpoint answers."""
        with urllib.request.urlopen(f"{self.address}/moto-api/data.json", timeout=2) as resp:  # noqa: S310
            return bool(resp.status == 200)

    def software(self) -> str:
        """Moto and its version."""
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return f"moto {importlib.metadata.version('moto')}"
        return "moto"
