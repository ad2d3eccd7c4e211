"""The Docker-less local stack: Apache Kafka, Redis, a local AWS endpoint and (optionally) Spark, as processes.

One module per service gives its nodes (:class:`devstack.process.Node`): :mod:`devstack.kafka_broker` (KRaft,
one node or ``TONE_STACK_KAFKA_BROKERS``), :mod:`devstack.redis_server` (one node or a Redis Cluster of 3 masters
with 2 replicas each, ``TONE_STACK_REDIS_CLUSTER``), :mod:`devstack.moto_server` (S3 and SageMaker's control plane) and
:mod:`devstack.spark_cluster` (a standalone master and ``TONE_STACK_SPARK_WORKERS`` workers). This module starts a
service's nodes together (a KRaft quorum needs a majority of its controllers before any is ready), waits until
each is healthy, lets the service finish forming (a Redis Cluster is created on its first start), and creates the
project's topics. State lives under one directory, so topics, messages, counts and checkpoints survive
`tone stack down/up` and a ``kill -9`` of any node; ``down`` stops only processes this stack started.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr

from devstack.kafka_broker import KafkaNode, kafka_cluster_id
from devstack.mlflow_server import MlflowNode
from devstack.moto_server import MotoNode
from devstack.process import Node, Processes, ServiceStatus
from devstack.redis_server import RedisService
from devstack.spark_cluster import SparkService
from devstack.tls import KAFKA_USER, Secrets, ensure_secrets
from tone.aggregates.redis_store import settings_client
from tone.errors import StackError, ToneError
from tone.kafka.admin import Replication, create_topics
from tone.kafka.config import KafkaConnection
from tone.settings import Settings, env_name

__all__ = ["LocalStack", "ServiceStatus", "kafka_cluster_id"]

CHECK_TOPIC = "_tone.check"  # scratch topic for `tone stack check`; the stream never reads it


@dataclass(frozen=True)
class _Range:
    topic: str
    partition: int
    start: int
    end: int


class Service(Protocol):
    """A service of the stack: its nodes, and what to do once they all answer."""

    @property
    def nodes(self) -> Sequence[Node]:
        """Its processes, in start order."""

    def ready(self, log: Callable[[str], None]) -> None:
        """Finish forming (a cluster) after every node is healthy."""


@dataclass
class _Nodes:
    """A service whose nodes need nothing more than to be healthy."""

    name: str
    nodes: Sequence[Node]

    def ready(self, log: Callable[[str], None]) -> None:
        """Nothing to form."""


class LocalStack:
    """Start, check and stop the local services described by one :class:`Settings`."""

    SERVICES = ("moto", "redis", "kafka", "spark", "mlflow")  # start order; `down` stops them in reverse

    def __init__(self, settings: Settings) -> None:
        """Bind the stack to its settings (ports, state directory, sizes)."""
        self.settings = settings
        self.dir = settings.stack_dir
        self.processes = Processes(self.dir)
        secrets = self.secrets if self.secure else None
        self.redis = RedisService(settings, self.dir, secrets)
        self.kafka = [
            KafkaNode(settings, i, self.dir, secrets, self.kafka_connection)
            for i in range(settings.stack_kafka_brokers)
        ]
        self.spark = SparkService(settings, self.dir)
        self.services: dict[str, Service] = {
            "moto": _Nodes("moto", [MotoNode(settings.stack_moto_port)]),
            "redis": self.redis,
            "kafka": _Nodes("kafka", self.kafka),
            "spark": self.spark,
            # Only with TONE_STACK_MLFLOW (for TONE_REGISTRY_URI=mlflow://...): it takes seconds to start.
            "mlflow": _Nodes(
                "mlflow", [MlflowNode(settings.stack_mlflow_port, self.dir / "mlflow")] if settings.stack_mlflow else []
            ),
        }
        self.ports = {
            "kafka": settings.stack_kafka_port,
            "redis": settings.stack_redis_port,
            "moto": settings.stack_moto_port,
        }
        if settings.stack_mlflow:
            self.ports["mlflow"] = settings.stack_mlflow_port

    @property
    def nodes(self) -> list[Node]:
        """Every node, in start order."""
        return [node for name in self.SERVICES for node in self.services[name].nodes]

    def node(self, name: str) -> Node:
        """The node called ``name`` (as in `tone stack status`)."""
        for node in self.nodes:
            if node.name == name:
                return node
        msg = f"no node {name!r} in this stack; it has: {', '.join(n.name for n in self.nodes)}"
        raise StackError(msg)

    # -- addresses clients use -------------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        """Kafka bootstrap address(es) of the local broker(s)."""
        return ",".join(node.address for node in self.kafka)

    @property
    def secure(self) -> bool:
        """Kafka with SASL_SSL/SCRAM-SHA-512 and Redis with a password over TLS (TONE_STACK_SECURE)."""
        return self.settings.stack_secure

    @property
    def secrets(self) -> Secrets:
        """The secure stack's certificates and passwords (under the state directory)."""
        return Secrets(self.dir / "secrets")

    @property
    def redis_url(self) -> str:
        """Redis URL of the local server (rediss:// when secure; a cluster's first node)."""
        return self.redis.url

    @property
    def aws_endpoint(self) -> str:
        """AWS endpoint URL of the local moto server."""
        return f"http://127.0.0.1:{self.ports['moto']}"

    def client_env(self) -> dict[str, str]:
        """Environment variables that point this project's clients at the local stack.

        Secrets are not in the values: they read the secrets' files when a shell evaluates them (``$(cat ...)``).
        """
        env = {
            env_name("kafka_bootstrap_servers"): self.bootstrap,
            env_name("redis_url"): self.redis_url,
            env_name("aws_endpoint_url"): self.aws_endpoint,
            **self.redis.client_env(),
            **self.spark.client_env(),
        }
        if self.settings.stack_mlflow:
            env[env_name("mlflow_tracking_uri")] = f"http://127.0.0.1:{self.settings.stack_mlflow_port}"
        if self.secure:
            s = self.secrets
            env |= {
                env_name("kafka_security_protocol"): "SASL_SSL",
                env_name("kafka_sasl_mechanism"): "SCRAM-SHA-512",
                env_name("kafka_sasl_username"): KAFKA_USER,
                env_name("kafka_sasl_password"): f'"$(cat {s.password_file(KAFKA_USER)})"',
                env_name("kafka_ssl_ca_file"): str(s.ca),
                env_name("redis_password"): f'"$(cat {s.password_file("redis")})"',
                env_name("redis_ca_file"): str(s.ca),
            }
        return env

    def client_settings(self) -> Settings:
        """The settings with clients pointed at this stack, secrets included (tests, `tone stack check`)."""
        overrides: dict[str, object] = {
            "kafka_bootstrap_servers": self.bootstrap,
            "redis_url": self.redis_url,
            "redis_cluster": self.redis.cluster,
            "aws_endpoint_url": self.aws_endpoint,
        }
        if self.spark.workers:
            overrides["spark_master"] = self.spark.master.address
        if self.settings.stack_mlflow:
            overrides["mlflow_tracking_uri"] = f"http://127.0.0.1:{self.settings.stack_mlflow_port}"
        if self.secure:
            s = self.secrets
            overrides |= {
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_mechanism": "SCRAM-SHA-512",
                "kafka_sasl_username": KAFKA_USER,
                "kafka_sasl_password": SecretStr(s.password(KAFKA_USER)),
                "kafka_ssl_ca_file": s.ca,
                "redis_password": SecretStr(s.password("redis")),
                "redis_ca_file": s.ca,
            }
        return self.settings.model_copy(update=overrides)  # not re-validated: values are of the fields' types

    def kafka_connection(self) -> KafkaConnection:
        """How the stack's own tools connect to its brokers."""
        return KafkaConnection.from_settings(self.client_settings())

    # -- files and processes -------------------------------------------------------------------------------------
    def pid_file(self, name: str) -> Path:
        """Where the PID record of node ``name`` lives."""
        return self.processes.pid_file(name)

    def log_file(self, name: str) -> Path:
        """Where node ``name`` writes its output."""
        return self.processes.log_file(name)

    def running_pid(self, name: str) -> int | None:
        """PID of our process for node ``name`` if it is still the process we started, else None."""
        return self.processes.running_pid(name)

    @property
    def kafka_dir(self) -> Path:
        """The (first) broker's own directory: configuration and (under data/) its log segments and metadata."""
        return self.kafka[0].dir

    def kafka_properties(self) -> str:
        """server.properties of the (first) KRaft node."""
        return self.kafka[0].properties()

    def software(self, name: str) -> str:
        """What runs as node ``name``, with its version."""
        return self.node(name).software()

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def create_topics(self, timeout: float = 60.0) -> list[str]:
        """Create the project's topics if missing; return the ones created now."""
        s = self.settings
        wanted = {s.kafka_topic_tweets: s.kafka_partitions, s.kafka_topic_dlq: 1, s.kafka_topic_scored: 1}
        try:
            replication = Replication(s.kafka_replication_factor, s.kafka_min_insync_replicas)
            return create_topics(self.kafka_connection(), wanted, timeout, replication)
        except ToneError as exc:
            raise StackError(str(exc)) from exc

    def _check_mode(self) -> None:
        """A state directory keeps the mode and shape it was created in (users and cluster ids are made then)."""
        s = self.settings
        shape = f"{'secure' if self.secure else 'plain'}"
        if s.stack_kafka_brokers > 1 or s.stack_redis_cluster:
            shape += f" kafka={s.stack_kafka_brokers} redis={'cluster' if s.stack_redis_cluster else 'one'}"
        marker = self.dir / "mode"
        if not marker.exists():
            marker.write_text(shape + "\n")
            return
        made = marker.read_text().strip()
        if made != shape:
            msg = (
                f"the stack in {self.dir} was created as '{made}' and the settings now ask for '{shape}' "
                "(TONE_STACK_SECURE, TONE_STACK_KAFKA_BROKERS, TONE_STACK_REDIS_CLUSTER): set them back, or use "
                "another TONE_STACK_DIR (or remove this one)"
            )
            raise StackError(msg)

    def up(self, log: Callable[[str], None] = lambda _m: None) -> dict[str, int]:
        """Start whatever is not running yet, wait until healthy, create topics. Returns node name -> PID."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._check_mode()
        if self.secure:
            ensure_secrets(self.secrets.directory)
        pids = {}
        for name in self.SERVICES:
            service = self.services[name]
            started = {}
            t0 = time.monotonic()
            for node in service.nodes:
                pid = self.running_pid(node.name)
                if pid is not None:
                    log(f"{node.name} already running (pid {pid})")
                    pids[node.name] = pid
                    continue
                started[node.name] = (node, self.processes.spawn(node))
            try:
                for node, proc in started.values():
                    self.processes.wait_ready(node, proc)
                    pids[node.name] = proc.pid
                    log(f"{node.name} started on port {node.port} (pid {proc.pid}) in {time.monotonic() - t0:.1f} s")
                service.ready(log)
            except StackError:
                for node, _ in started.values():  # no half-started service left behind
                    self.processes.stop(node.name)
                raise
        created = self.create_topics()
        if created:
            log(f"created topics: {', '.join(created)}")
        self.await_producer_ids(log)
        return pids

    def await_producer_ids(self, log: Callable[[str], None] = lambda _m: None, timeout: float = 120.0) -> None:
        """Wait until the brokers hand out producer ids, to idempotent and transactional producers alike.

        A new broker gets its first block of ids from the controller, and a transaction coordinator loads its state,
        a while after it takes connections; until then every producer logs "Failed to acquire idempotence PID ...:
        Coordinator load in progress: retrying" (57 lines in the demo's first minute). Here those are waited out once,
        with librdkafka's log kept quiet, so the stack is ready when `tone stack up` returns.
        """
        from confluent_kafka import KafkaException, Producer

        quiet = logging.getLogger("tone.stack.librdkafka")
        quiet.propagate = False
        quiet.addHandler(logging.NullHandler())
        base = {**self.kafka_connection().librdkafka(), "logger": quiet}
        t0 = time.monotonic()
        create_topics(self.kafka_connection(), {CHECK_TOPIC: 1})
        try:
            for node in self.kafka:  # each broker draws producer ids from a block of its own
                producer = Producer({**base, "bootstrap.servers": node.address, "enable.idempotence": True})
                producer.produce(CHECK_TOPIC, value=b"ready")
                if producer.flush(timeout):
                    msg = f"{node.name} handed out no producer id within {timeout:.0f} s"
                    raise StackError(msg)
            for i in range(3 * len(self.kafka)):  # ids whose coordinators sit on different brokers
                Producer({**base, "transactional.id": f"tone-stack-ready-{i}"}).init_transactions(timeout)
        except KafkaException as exc:
            msg = (
                f"the brokers hand out no producer ids: {exc}. Check the broker logs in {self.dir} (tone stack status)"
            )
            raise StackError(msg) from exc
        log(f"producer ids and transactions ready in {time.monotonic() - t0:.1f} s")

    def _stop(self, name: str, timeout: float = 10.0) -> bool:
        return self.processes.stop(name, timeout)

    def down(self, log: Callable[[str], None] = lambda _m: None) -> list[str]:
        """Stop the nodes this stack started (by PID record), in reverse start order."""
        stopped = []
        for node in reversed(self.nodes):
            if self.processes.stop(node.name):
                stopped.append(node.name)
                log(f"{node.name} stopped")
        return stopped

    def status(self) -> list[ServiceStatus]:
        """State of each node (with a cluster, each node's role as the cluster sees it now)."""
        self.redis.refresh_roles()
        return [self.processes.status(node) for node in self.nodes]

    def check(self, messages: int = 100) -> dict[str, float]:
        """Round trip through the running stack: produce and read back on a scratch topic, Redis SET/GET.

        Returns the seconds each step took; raises StackError with the failing step.
        """
        import uuid

        from tone.kafka.clients import open_producer
        from tone.kafka.readers import open_reader

        timings = {}
        token = uuid.uuid4().hex
        conn = self.kafka_connection()
        create_topics(conn, {CHECK_TOPIC: 1})
        reader = open_reader(conn)
        try:
            before = reader.end_offsets(CHECK_TOPIC, [0])[0]
            t0 = time.monotonic()
            producer = open_producer(conn)
            for i in range(messages):
                producer.send(CHECK_TOPIC, key=token.encode(), value=f"{token}:{i}".encode())
            producer.flush(timeout=30)
            timings["kafka_produce_s"] = time.monotonic() - t0

            t0 = time.monotonic()
            after = reader.end_offsets(CHECK_TOPIC, [0])[0]
            seen: set[bytes] = set()
            for chunk in reader.read_range(_Range(CHECK_TOPIC, 0, before, after)):
                seen.update(v for k, v in zip(chunk.keys, chunk.values, strict=True) if k == token.encode() and v)
        finally:
            reader.close()
        if len(seen) != messages:
            msg = f"broker check failed: read back {len(seen)} of {messages} messages from {CHECK_TOPIC}"
            raise StackError(msg)
        timings["kafka_consume_s"] = time.monotonic() - t0

        t0 = time.monotonic()
        client = settings_client(self.client_settings())  # its redis_url is this stack's
        try:
            client.set(f"tone:check:{token}", token, ex=60)
            if client.get(f"tone:check:{token}") != token.encode():
                msg = "Redis check failed: a value written could not be read back"
                raise StackError(msg)
        finally:
            client.close()
        timings["redis_roundtrip_s"] = time.monotonic() - t0
        return timings
