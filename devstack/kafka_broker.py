"""Apache Kafka for the local stack: KRaft nodes that are both broker and controller, one or a cluster of several.

Run from the Maven Central jars `make setup` fetched (``java -cp ... kafka.Kafka``). One node (the default) listens
on ``TONE_STACK_KAFKA_PORT`` with its controller on ``TONE_STACK_KAFKA_CONTROLLER_PORT``. With
``TONE_STACK_KAFKA_BROKERS=N`` node ``i`` (0-based) listens on those ports + 2i (brokers and controllers interleave:
9092, 9094, 9096 and 9093, 9095, 9097 by default); the controllers form one quorum, and the internal topics get
min(3, N) replicas. Log directories live under the state directory, so topics and messages survive `tone stack
down/up` and a ``kill -9`` of a broker.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Final

from devstack.process import Node, port_open
from devstack.tls import KAFKA_ADMIN, KAFKA_USER, Secrets
from tone.errors import StackError, ToneError
from tone.jars import KAFKA_VERSION, cached_jars, kafka_broker
from tone.kafka.admin import admin_client
from tone.kafka.config import KafkaConnection
from tone.settings import Settings, env_name

# The broker shares 2 cores with Spark, the Python workers and Redis: the serial GC and the C1 JIT only, as for
# Spark's local driver. Measured over one `tone bench replay --tweets 10000 --rate 1000` (57 s each): broker CPU
# 12.2 s with Kafka's default G1 flags, 6.5 s with these; the stream's p95 went from 3.19 to 1.68 s.
BROKER_JVM_OPTIONS: Final = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:CICompilerCount=1")

# The broker's log4j2 configuration: INFO from the broker itself, warnings from the client libraries it embeds.
LOG4J2: Final = """\
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.clients.name = org.apache.kafka
logger.clients.level = WARN
logger.kafka.name = kafka
logger.kafka.level = INFO
"""


def java_binary() -> str:
    """The Java runtime the broker runs on (Kafka 4 needs Java 17 or newer)."""
    home = os.environ.get("JAVA_HOME")
    found = (
        str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    )
    if not found:
        msg = "no Java runtime for the Kafka broker: apt-get install -y openjdk-17-jre-headless (make setup does)"
        raise StackError(msg)
    return found


def kafka_cluster_id() -> str:
    """A new KRaft cluster id: a random UUID in Kafka's URL-safe base64 form (22 characters).

    Never one that begins with "-" (as Kafka's own Uuid.randomUuid avoids too): the storage tool's command line
    would read it as an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def kafka_ports(settings: Settings) -> list[tuple[int, int]]:
    """(broker port, controller port) of each node; StackError when the two series collide."""
    n = settings.stack_kafka_brokers
    ports = [(settings.stack_kafka_port + 2 * i, settings.stack_kafka_controller_port + 2 * i) for i in range(n)]
    brokers, controllers = {b for b, _ in ports}, {c for _, c in ports}
    if brokers & controllers:
        msg = (
            f"{env_name('stack_kafka_port')} and {env_name('stack_kafka_controller_port')} give ports that collide "
            f"for {n} brokers (each node i takes both + 2i): use an odd difference, e.g. 9092 and 9093"
        )
        raise StackError(msg)
    return ports


class KafkaNode(Node):
    """One KRaft node (broker and controller in one process)."""

    def __init__(  # noqa: PLR0913 - where it runs and how clients reach it
        self,
        settings: Settings,
        index: int,
        directory: Path,
        secrets: Secrets | None,
        connection: Callable[[], KafkaConnection],
    ) -> None:
        """Node ``index`` (0-based) of ``settings.stack_kafka_brokers``, its state under ``directory``.

        ``connection``: how the stack's clients connect (security), for the health check.
        """
        self.settings, self.index, self.secrets, self._connection = settings, index, secrets, connection
        self.count = settings.stack_kafka_brokers
        self.ports = kafka_ports(settings)
        self.port, self.controller_port = self.ports[index]
        self.name = "kafka" if self.count == 1 else f"kafka-{index + 1}"
        self.dir = directory / self.name
        self.cluster_id_file = directory / "kafka-cluster-id"
        self.port_setting = env_name("stack_kafka_port")
        self.role = "broker+controller"

    @property
    def address(self) -> str:
        """The node's bootstrap address."""
        return f"127.0.0.1:{self.port}"

    def other_ports(self) -> Sequence[int]:
        """The controller's."""
        return (self.controller_port,)

    def properties(self) -> str:
        """server.properties of this node."""
        port, controller = self.port, self.controller_port
        replicas = min(3, self.count)
        lines = {
            "process.roles": "broker,controller",
            "node.id": str(self.index + 1),
            "controller.quorum.voters": ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(self.ports)),
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.dir / "data"),
            "num.partitions": str(self.settings.kafka_partitions),
            # The internal topics: one replica per node up to 3, and a write needs all but one of them.
            "offsets.topic.replication.factor": str(replicas),
            "transaction.state.log.replication.factor": str(replicas),
            "transaction.state.log.min.isr": str(max(1, replicas - 1)),
            "share.coordinator.state.topic.replication.factor": str(replicas),
            "share.coordinator.state.topic.min.isr": str(max(1, replicas - 1)),
            # Tests and demos start consumer groups right after the broker: no 3 s wait for more members.
            "group.initial.rebalance.delay.ms": "0",
            # Few threads: this broker shares 2 cores with Spark, the scorers and Redis.
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "background.threads": "2",
        }
        if self.count > 1:
            # A node that died comes back as a follower; leadership returns to the preferred replicas slowly.
            lines["default.replication.factor"] = str(replicas)
            lines["min.insync.replicas"] = str(max(1, replicas - 1))
        if self.secrets:
            # Clients (and the broker to itself) on SASL_SSL with SCRAM-SHA-512; the controller listener stays
            # PLAINTEXT on loopback. The users are created when the log directory is formatted. This file holds the
            # broker's own password: it is readable by its owner only.
            s = self.secrets
            jaas = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{KAFKA_ADMIN}" password="{s.password(KAFKA_ADMIN)}";'
            )
            lines |= {
                "listeners": f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
                "advertised.listeners": f"SASL_SSL://127.0.0.1:{port}",
                "inter.broker.listener.name": "SASL_SSL",
                "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
                "sasl.enabled.mechanisms": "SCRAM-SHA-512",
                "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas,
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": str(s.kafka_keystore),
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": str(s.ca),
            }
        return "".join(f"{k}={v}\n" for k, v in lines.items())

    def _cluster_id(self) -> str:
        """One id for every node of the stack's cluster, made on the first start."""
        if not self.cluster_id_file.exists():
            self.cluster_id_file.write_text(kafka_cluster_id() + "\n")
        return self.cluster_id_file.read_text().strip()

    def command(self) -> tuple[list[str], dict[str, str]]:
        """The JVM running kafka.Kafka; formats the log directory on the first start."""
        try:
            classpath = ":".join(str(p) for p in cached_jars(self.settings.jars_dir, kafka_broker()))
        except ToneError as exc:
            raise StackError(str(exc)) from None
        java = java_binary()
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self.dir / "server.properties"
        config.write_text(self.properties())  # ports may differ from the last `up`; the data stays
        config.chmod(0o600)
        (self.dir / "log4j2.properties").write_text(LOG4J2)
        heap = self.settings.stack_kafka_heap_mb
        jvm = [
            java,
            f"-Xmx{heap}m",
            f"-Xms{max(128, heap // 2)}m",
            *BROKER_JVM_OPTIONS,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            "-cp",
            classpath,
        ]
        if not (self.dir / "data" / "meta.properties").exists():
            # First start of this node: format its log directory for the stack's cluster.
            fmt = [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={self._cluster_id()}", "-c", str(config)]
            if self.secrets:
                for user in (KAFKA_ADMIN, KAFKA_USER):
                    password = self.secrets.password(user)
                    fmt += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
            result = subprocess.run(fmt, capture_output=True, text=True, check=False, timeout=120)  # noqa: S603
            if result.returncode != 0:
                msg = f"formatting the Kafka log directory failed: {(result.stdout + result.stderr)[-1500:]}"
                raise StackError(msg)
        return [*jvm, "kafka.Kafka", str(config)], dict(os.environ)

    def healthy(self) -> bool:
        """The node answers a metadata request and counts itself among the brokers.

        It takes TCP connections before it is ready: a port check is not enough.
        """
        if not port_open(self.port):  # not up yet: no client (and no client's connection errors in the log)
            return False
        only_me = replace(self._connection(), bootstrap_servers=(self.address,))
        metadata = admin_client(only_me).list_topics(timeout=2)
        return self.index + 1 in metadata.brokers

    def software(self) -> str:
        """Apache Kafka and its version."""
        return f"Apache Kafka {KAFKA_VERSION} (KRaft, broker+controller)"
