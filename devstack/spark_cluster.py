"""A Spark standalone cluster for the local stack (``TONE_STACK_SPARK_WORKERS=N``).

A master and N workers from pyspark's own launcher classes, on loopback.

The master takes applications on ``TONE_STACK_SPARK_PORT`` and shows its web UI (and the JSON the health check
reads) on that port + 1; worker ``i`` shows its UI on the port + 2 + i. Each worker offers 1 core and 1 GiB to
executors: several workers on 2 cores test correctness (an executor lost mid-batch), not speed.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

from devstack.process import Node, wait_for
from tone.settings import Settings, env_name

WORKER_CORES = 1
WORKER_MEMORY = "1g"
DAEMON_MEMORY = "256m"  # the master and worker daemons themselves (executors get WORKER_MEMORY)


def spark_home() -> Path:
    """Pyspark's installation (its jars and bin/spark-class)."""
    import pyspark

    return Path(pyspark.__file__).parent


def _env(logs: Path) -> dict[str, str]:
    home = spark_home()
    return {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOG_DIR": str(logs),
        "SPARK_DAEMON_MEMORY": DAEMON_MEMORY,
    }


def _ui_json(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/", timeout=2) as resp:  # noqa: S310 - loopback
        answer: dict[str, object] = json.load(resp)
        return answer


class SparkMaster(Node):
    """The standalone master."""

    def __init__(self, port: int, directory: Path) -> None:
        """Applications on ``port``, the UI on ``port + 1``."""
        self.name, self.port, self.ui_port, self.dir = "spark-master", port, port + 1, directory
        self.port_setting, self.role = env_name("stack_spark_port"), "master"

    @property
    def address(self) -> str:
        """The master URL applications use."""
        return f"spark://127.0.0.1:{self.port}"

    def other_ports(self) -> tuple[int, ...]:
        """The web UI."""
        return (self.ui_port,)

    def command(self) -> tuple[list[str], dict[str, str]]:
        """spark-class ...Master on loopback."""
        cmd = [str(spark_home() / "bin" / "spark-class"), "org.apache.spark.deploy.master.Master"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(self.ui_port)]
        return cmd, _env(self.dir / "logs")

    def healthy(self) -> bool:
        """Its UI answers and it is ALIVE."""
        return _ui_json(self.ui_port).get("status") == "ALIVE"

    def software(self) -> str:
        """Spark and its version."""
        import importlib.metadata

        return f"Apache Spark {importlib.metadata.version('pyspark')} (standalone)"

    def alive_workers(self) -> int:
        """Workers registered and alive."""
        return int(str(_ui_json(self.ui_port).get("aliveworkers", 0)))


class SparkWorker(Node):
    """One standalone worker."""

    def __init__(self, master: SparkMaster, index: int) -> None:
        """Worker ``index`` (0-based) of ``master``."""
        self.master, self.index = master, index
        self.name, self.port = f"spark-worker-{index + 1}", master.port + 2 + index
        self.port_setting, self.role = env_name("stack_spark_port"), f"worker, {WORKER_CORES} core"

    @property
    def address(self) -> str:
        """Its web UI."""
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        """spark-class ...Worker registering with the master."""
        work = self.master.dir / "work" / self.name
        cmd = [str(spark_home() / "bin" / "spark-class"), "org.apache.spark.deploy.worker.Worker"]
        cmd += ["--host", "127.0.0.1", "--cores", str(WORKER_CORES), "--memory", WORKER_MEMORY]
        cmd += ["--webui-port", str(self.port), "--work-dir", str(work), self.master.address]
        return cmd, _env(self.master.dir / "logs")

    def healthy(self) -> bool:
        """Its UI answers and it knows its master."""
        return bool(_ui_json(self.port).get("masterurl"))

    def software(self) -> str:
        """As the master's."""
        return self.master.software()


class SparkService:
    """A master and N workers; none when TONE_STACK_SPARK_WORKERS is 0."""

    name = "spark"

    def __init__(self, settings: Settings, directory: Path) -> None:
        """Nodes from the settings."""
        self.workers = settings.stack_spark_workers
        self.master = SparkMaster(settings.stack_spark_port, directory / "spark")
        self.nodes: list[Node] = [self.master, *(SparkWorker(self.master, i) for i in range(self.workers))]
        if not self.workers:
            self.nodes = []

    def client_env(self) -> dict[str, str]:
        """The master URL, for `tone stream` and spark-submit."""
        return {env_name("spark_master"): self.master.address} if self.workers else {}

    def ready(self, log: Callable[[str], None]) -> None:  # noqa: ARG002 - the services' shape
        """Wait until every worker has registered with the master."""
        if self.workers:
            wait_for(lambda: self.master.alive_workers() >= self.workers, "the Spark workers", 90.0, self.master.dir)
