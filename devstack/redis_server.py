"""Redis for the local stack: Debian's ``redis-server``, one node or a Redis Cluster of masters and replicas.

One node (the default) listens on ``TONE_STACK_REDIS_PORT``. ``TONE_STACK_REDIS_CLUSTER=1`` runs 3 masters with 2
replicas each on that port and the 8 after it (each node's cluster bus on its port + 10000), all on loopback: one
node's loss leaves its shard a master with a replica, so ``TONE_REDIS_WAIT_REPLICAS=1`` holds with nobody at the
keyboard (with one replica each, the promoted master had none and its shard stalled). The first
``up`` creates the cluster (``redis-cli --cluster create``), later ones find it formed from each node's
``nodes.conf``. Every node keeps an append-only file, so counts survive a restart as on a production server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from devstack.process import Node, wait_for
from devstack.tls import Secrets
from tone.aggregates.redis_store import redis_client
from tone.errors import StackError
from tone.settings import Settings, env_name

CLUSTER_MASTERS: Final = 3
CLUSTER_REPLICAS: Final = 2  # per master: see the module docstring
CLUSTER_NODE_TIMEOUT_MS: Final = 2000  # a master missing this long is failed over (seconds of unavailability)


def redis_binary(name: str = "redis-server") -> str:
    """Path of redis-server (or redis-cli), installing Debian's package when missing and running as root."""
    found = shutil.which(name)
    if found:
        return found
    install = "apt-get install -y redis-server"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        msg = f"{name} is not installed; install it with: sudo {install}"
        raise StackError(msg)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (install, f"apt-get update -qq && {install}"):
        if subprocess.run(cmd, shell=True, env=env, capture_output=True, check=False).returncode == 0:  # noqa: S602
            break
    found = shutil.which(name)
    if not found:
        msg = f"installing redis-server failed; run: apt-get update && {install}"
        raise StackError(msg)
    return found


class RedisNode(Node):
    """One redis-server: the stack's only Redis, or one node of its cluster."""

    def __init__(  # noqa: PLR0913 - where it runs and how
        self,
        name: str,
        port: int,
        data: Path,
        *,
        secrets: Secrets | None = None,
        cluster: bool = False,
        role: str = "",
    ) -> None:
        """``secrets``: TLS and a password (the secure stack); ``cluster``: cluster mode."""
        self.name, self.port, self.data = name, port, data
        self.port_setting = env_name("stack_redis_port")
        self.secrets, self.cluster, self.role = secrets, cluster, role

    @property
    def url(self) -> str:
        """Redis URL of this node (rediss:// when secure)."""
        return f"{'rediss' if self.secrets else 'redis'}://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        """The node's URL."""
        return self.url

    def other_ports(self) -> Sequence[int]:
        """A cluster node's bus."""
        return (self.port + 10000,) if self.cluster else ()

    def client(self) -> Any:
        """A client of this node only (cluster or not), for the stack's own checks."""
        password = self.secrets.password("redis") if self.secrets else None
        return redis_client(self.url, password, str(self.secrets.ca) if self.secrets else None)

    def command(self) -> tuple[list[str], dict[str, str]]:
        """redis-server with an append-only file in the node's data directory."""
        self.data.mkdir(parents=True, exist_ok=True)
        cmd = [redis_binary()]
        if self.secrets:
            # The password goes in a config file only its owner can read, not on the command line (ps shows it).
            s = self.secrets
            conf = s.directory / f"{self.name}.conf"
            lines = [
                f'requirepass "{s.password("redis")}"',
                "port 0",
                f"tls-port {self.port}",
                f"tls-cert-file {s.server_cert}",
                f"tls-key-file {s.server_key}",
                f"tls-ca-cert-file {s.ca}",
                "tls-auth-clients no",
            ]
            conf.write_text("\n".join(lines) + "\n")
            conf.chmod(0o600)
            cmd.append(str(conf))
        cmd += ["--bind", "127.0.0.1", *([] if self.secrets else ["--port", str(self.port)]), "--dir", str(self.data)]
        # AOF so per-user aggregates survive a Redis restart, like a production Redis would be run.
        cmd += ["--appendonly", "yes", "--save", "", "--daemonize", "no", "--protected-mode", "yes"]
        if self.cluster:
            cmd += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            cmd += ["--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS)]
        return cmd, dict(os.environ)

    def healthy(self) -> bool:
        """It answers PING (with the stack's password when secure)."""
        client = self.client()
        try:
            return bool(client.ping())
        finally:
            client.close()

    def software(self) -> str:
        """Redis and its version."""
        with contextlib.suppress(Exception):
            out = subprocess.run([redis_binary(), "--version"], capture_output=True, text=True, check=False)  # noqa: S603
            version = next((w.split("=", 1)[1] for w in out.stdout.split() if w.startswith("v=")), "")
            return f"Redis {version}{' (cluster mode)' if self.cluster else ''}".strip()
        return "Redis"


class RedisService:
    """The stack's Redis: one node, or a cluster of 3 masters with 2 replicas each (TONE_STACK_REDIS_CLUSTER)."""

    name = "redis"

    def __init__(self, settings: Settings, directory: Path, secrets: Secrets | None) -> None:
        """Nodes from the settings; ``directory``: the stack's state directory."""
        self.settings, self.cluster = settings, settings.stack_redis_cluster
        if not self.cluster:
            self.nodes = [RedisNode("redis", settings.stack_redis_port, directory / "redis", secrets=secrets)]
            return
        if secrets is not None:
            msg = "the local Redis Cluster runs without TLS: unset TONE_STACK_SECURE or TONE_STACK_REDIS_CLUSTER"
            raise StackError(msg)
        self.nodes = [
            RedisNode(f"redis-{i + 1}", settings.stack_redis_port + i, directory / f"redis-{i + 1}", cluster=True)
            for i in range(CLUSTER_MASTERS * (1 + CLUSTER_REPLICAS))
        ]

    @property
    def url(self) -> str:
        """What clients use: the node, or every node of a cluster as seed nodes.

        A cluster client starts from the first seed that answers, so a node's loss does not stop clients starting.
        """
        return ",".join(node.url for node in self.nodes)

    def client_env(self) -> dict[str, str]:
        """Settings a client of this Redis needs besides the URL."""
        return {env_name("redis_cluster"): "1"} if self.cluster else {}

    def ready(self, log: Callable[[str], None]) -> None:
        """Nodes up: create the cluster on the first start, then wait until every node says it is ok."""
        if not self.cluster:
            return
        first = self.nodes[0].client()
        try:
            formed = int(first.cluster("info").get("cluster_known_nodes", 1)) > 1
        finally:
            first.close()
        if not formed:
            cmd = [redis_binary("redis-cli"), "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes)]
            cmd += ["--cluster-replicas", str(CLUSTER_REPLICAS), "--cluster-yes"]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)  # noqa: S603
            if out.returncode != 0:
                msg = f"redis-cli --cluster create failed: {(out.stdout + out.stderr)[-1500:]}"
                raise StackError(msg)
            log(f"created a Redis Cluster of {CLUSTER_MASTERS} masters with {CLUSTER_REPLICAS} replicas each")
        wait_for(self.cluster_ok, "the Redis Cluster", 60.0, self.nodes[0].data / "nodes.conf")
        self.refresh_roles()

    def cluster_ok(self) -> bool:
        """Every node says cluster_state:ok and knows every other node."""
        for node in self.nodes:
            client = node.client()
            try:
                info = client.cluster("info")
            finally:
                client.close()
            if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) != len(self.nodes):
                return False
        return True

    def refresh_roles(self) -> None:
        """Each node's role as the cluster sees it now (a failover swaps a master and its replica)."""
        if not self.cluster:
            return
        by_port = {n.port: n for n in self.nodes}
        for node in self.nodes:
            with contextlib.suppress(Exception):
                client = node.client()
                try:
                    role = client.execute_command("ROLE")
                finally:
                    client.close()
                kind = role[0].decode() if isinstance(role[0], bytes) else str(role[0])
                if kind == "master":
                    node.role = "master"
                else:
                    master = by_port.get(int(role[2]))
                    node.role = f"replica of {master.name if master else role[2]}"

    def _slots_served(self, node: RedisNode) -> bool:
        """Whether every slot belongs to a master that is not flagged failing and answers PING.

        As ``node`` sees it: after a kill, the cluster notices the lost master only after the node timeout.
        """
        client = node.client()
        try:
            lines = client.execute_command("CLUSTER", "NODES").decode().splitlines()
        finally:
            client.close()
        covered = 0
        for line in lines:
            fields = line.split()
            flags = fields[2].split(",")
            if "master" not in flags or "fail" in flags or "fail?" in flags:
                continue
            port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            if not any(n.port == port and n.healthy() for n in self.nodes):
                continue
            for part in fields[8:]:
                if part.startswith("["):  # a slot being migrated or imported
                    continue
                lo, _, hi = part.partition("-")
                covered += int(hi or lo) - int(lo) + 1
        return covered == 16384

    def wait_failover(self, timeout: float = 30.0) -> None:
        """Wait until every slot is served again (after a master's loss, its replica takes over)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                with contextlib.suppress(Exception):  # a node that is down: ask the next one
                    if self._slots_served(node):
                        return
            time.sleep(0.2)
        msg = f"the Redis Cluster did not serve every slot within {timeout:.0f} s"
        raise StackError(msg)
