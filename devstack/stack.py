"""The Docker-less local stack: Apache Kafka, Redis and a local AWS endpoint, as processes.

- Kafka: Apache Kafka (``tone.jars.KAFKA_VERSION``) in KRaft mode, one node that is both broker and controller,
  run from the Maven Central jars `make setup` fetched (``java -cp ... kafka.Kafka``). Its log directory is under
  the state directory, so topics and messages survive `tone stack down/up` and a ``kill -9`` of the broker;
  broker, Redis (AOF) and the stream's checkpoints live and die together with that directory.
- Redis: Debian's ``redis-server`` (installed with apt-get when missing and running as root), append-only file on.
- AWS: ``moto_server`` (S3 and SageMaker's control plane, enough for the tuning and registry code).

Each process writes a PID file (JSON with its kernel start time, so a recycled PID is never mistaken for ours)
and a log under the state directory. ``up`` is idempotent; ``down`` stops only processes this module started.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from devstack.tls import KAFKA_ADMIN, KAFKA_USER, Secrets, ensure_secrets
from tone.aggregates.redis_store import redis_client
from tone.errors import StackError, ToneError
from tone.jars import KAFKA_VERSION, cached_jars, kafka_broker
from tone.kafka.admin import Replication, admin_client, create_topics
from tone.kafka.config import KafkaConnection
from tone.settings import Settings, env_name

START_TIMEOUT_S = 60.0  # a JVM broker on 2 busy cores: 5-10 s measured, more while a test suite runs
# The broker shares 2 cores with Spark, the Python workers and Redis: the serial GC and the C1 JIT only, as for
# Spark's local driver. Measured over one `tone bench replay --tweets 10000 --rate 1000` (57 s each): broker CPU
# 12.2 s with Kafka's default G1 flags, 6.5 s with these; the stream's p95 went from 3.19 to 1.68 s.
BROKER_JVM_OPTIONS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:CICompilerCount=1")
CHECK_TOPIC = "_tone.check"  # scratch topic for `tone stack check`; the stream never reads it


@dataclass(frozen=True)
class _Range:
    topic: str
    partition: int
    start: int
    end: int


@dataclass(frozen=True)
class ServiceStatus:
    """One row of `tone stack status`."""

    name: str
    state: str  # running | stopped | stale (PID file of a dead process) | unhealthy
    pid: int | None
    address: str
    log: Path
    software: str = ""


def _proc_start_time(pid: int) -> int | None:
    """Kernel start time of a process (clock ticks since boot), or None when it does not exist."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError, PermissionError):
        return None
    # Field 22 of /proc/PID/stat; after the ")" that ends the command name, it is the 20th.
    if fields[0] == "Z":  # a zombie has exited; its start time must not count as alive
        return None
    return int(fields[19])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def _wait_for(check: Callable[[], bool], what: str, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    msg = f"{what} did not become ready within {timeout:.0f} s; last lines of {log}:\n{tail}"
    raise StackError(msg)


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


# The broker's log4j2 configuration: INFO from the broker itself, warnings from the client libraries it embeds.
LOG4J2 = """\
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


def kafka_cluster_id() -> str:
    """A new KRaft cluster id: a random UUID in Kafka's URL-safe base64 form (22 characters).

    Never one that begins with "-" (as Kafka's own Uuid.randomUuid avoids too): the storage tool's command line
    would read it as an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def redis_binary() -> str:
    """Path of redis-server, installing Debian's package when missing and running as root."""
    found = shutil.which("redis-server")
    if found:
        return found
    install = "apt-get install -y redis-server"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        msg = f"redis-server is not installed; install it with: sudo {install}"
        raise StackError(msg)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (install, f"apt-get update -qq && {install}"):
        if subprocess.run(cmd, shell=True, env=env, capture_output=True, check=False).returncode == 0:  # noqa: S602
            break
    found = shutil.which("redis-server")
    if not found:
        msg = f"installing redis-server failed; run: apt-get update && {install}"
        raise StackError(msg)
    return found


def moto_command() -> list[str]:
    """Command line of the moto server installed next to this interpreter."""
    if importlib.util.find_spec("moto") is None:
        msg = 'moto is missing: install with: pip install -e ".[stack]"'
        raise StackError(msg)
    script = Path(sys.executable).parent / "moto_server"
    return [str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]


class LocalStack:
    """Start, check and stop the local services described by one :class:`Settings`."""

    SERVICES = ("moto", "redis", "kafka")  # start order; `down` stops them in reverse

    def __init__(self, settings: Settings) -> None:
        """Bind the stack to its settings (ports, state directory, broker storage)."""
        self.settings = settings
        self.dir = settings.stack_dir
        self.ports = {
            "kafka": settings.stack_kafka_port,
            "redis": settings.stack_redis_port,
            "moto": settings.stack_moto_port,
        }
        self.port_settings = {
            "kafka": env_name("stack_kafka_port"),
            "redis": env_name("stack_redis_port"),
            "moto": env_name("stack_moto_port"),
        }

    # -- addresses clients use -------------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        """Kafka bootstrap address of the local broker."""
        return f"127.0.0.1:{self.ports['kafka']}"

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
        """Redis URL of the local server (rediss:// when secure)."""
        scheme = "rediss" if self.secure else "redis"
        return f"{scheme}://127.0.0.1:{self.ports['redis']}/0"

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
        }
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
            "aws_endpoint_url": self.aws_endpoint,
        }
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
        """How the stack's own tools connect to its broker."""
        return KafkaConnection.from_settings(self.client_settings())

    # -- files -------------------------------------------------------------------------------------------------
    def pid_file(self, name: str) -> Path:
        """Where the PID record of ``name`` lives."""
        return self.dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        """Where ``name`` writes its output."""
        return self.dir / "logs" / f"{name}.log"

    def _read_pid(self, name: str) -> tuple[int, int] | None:
        try:
            record = json.loads(self.pid_file(name).read_text())
            return int(record["pid"]), int(record["start_time"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def running_pid(self, name: str) -> int | None:
        """PID of our process for ``name`` if it is still the process we started, else None."""
        record = self._read_pid(name)
        if record is None:
            return None
        pid, start_time = record
        return pid if _proc_start_time(pid) == start_time else None

    # -- commands ----------------------------------------------------------------------------------------------
    def _command(self, name: str) -> tuple[list[str], dict[str, str]]:
        port = str(self.ports[name])
        env = dict(os.environ)
        if name == "kafka":
            return self._kafka_command(), env
        if name == "redis":
            data = self.dir / "redis"
            data.mkdir(parents=True, exist_ok=True)
            # AOF so per-user aggregates survive a Redis restart, like a production Redis would be run.
            cmd = [redis_binary()]
            if self.secure:
                # The password goes in a config file only its owner can read, not on the command line (ps shows it).
                s = self.secrets
                conf = s.directory / "redis.conf"
                lines = [
                    f'requirepass "{s.password("redis")}"',
                    "port 0",
                    f"tls-port {port}",
                    f"tls-cert-file {s.server_cert}",
                    f"tls-key-file {s.server_key}",
                    f"tls-ca-cert-file {s.ca}",
                    "tls-auth-clients no",
                ]
                conf.write_text("\n".join(lines) + "\n")
                conf.chmod(0o600)
                cmd.append(str(conf))
            cmd += [
                "--bind",
                "127.0.0.1",
                *([] if self.secure else ["--port", port]),
                "--dir",
                str(data),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
            ]
            return cmd, env
        return [*moto_command(), "-H", "127.0.0.1", "-p", port], env

    # -- Apache Kafka --------------------------------------------------------------------------------------------
    @property
    def kafka_dir(self) -> Path:
        """The broker's own directory: configuration and (under data/) the log segments and KRaft metadata."""
        return self.dir / "kafka"

    def kafka_properties(self) -> str:
        """server.properties of the one-node KRaft cluster (broker and controller in one process)."""
        port, controller = self.ports["kafka"], self.settings.stack_kafka_controller_port
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.kafka_dir / "data"),
            "num.partitions": str(self.settings.kafka_partitions),
            # One node: every internal topic has one replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Tests and demos start consumer groups right after the broker: no 3 s wait for more members.
            "group.initial.rebalance.delay.ms": "0",
            # Few threads: this broker shares 2 cores with Spark, the scorers and Redis.
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "background.threads": "2",
        }
        if self.secure:
            # Clients (and the broker to itself) on SASL_SSL with SCRAM-SHA-512; the controller listener stays
            # PLAINTEXT on loopback, inside this one process's node. The users are created when the log directory
            # is formatted. This file holds the broker's own password: it is readable by its owner only.
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

    def _kafka_command(self) -> list[str]:
        try:
            classpath = ":".join(str(p) for p in cached_jars(self.settings.jars_dir, kafka_broker()))
        except ToneError as exc:
            raise StackError(str(exc)) from None
        java = java_binary()
        self.kafka_dir.mkdir(parents=True, exist_ok=True)
        config = self.kafka_dir / "server.properties"
        config.write_text(self.kafka_properties())  # ports may differ from the last `up`; the data stays
        config.chmod(0o600)
        (self.kafka_dir / "log4j2.properties").write_text(LOG4J2)
        jvm = [
            java,
            f"-Xmx{self.settings.stack_kafka_heap_mb}m",
            f"-Xms{max(128, self.settings.stack_kafka_heap_mb // 2)}m",
            *BROKER_JVM_OPTIONS,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.kafka_dir / 'log4j2.properties'}",
            "-cp",
            classpath,
        ]
        if not (self.kafka_dir / "data" / "meta.properties").exists():
            # First start of this state directory: format the log directory for a new one-node cluster.
            fmt = [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={kafka_cluster_id()}", "-c", str(config)]
            if self.secure:
                for user in (KAFKA_ADMIN, KAFKA_USER):
                    password = self.secrets.password(user)
                    fmt += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
            result = subprocess.run(fmt, capture_output=True, text=True, check=False, timeout=120)  # noqa: S603
            if result.returncode != 0:
                msg = f"formatting the Kafka log directory failed: {(result.stdout + result.stderr)[-1500:]}"
                raise StackError(msg)
        return [*jvm, "kafka.Kafka", str(config)]

    def _kafka_answers(self) -> bool:
        """The broker answers a metadata request (it takes TCP connections before it is ready)."""
        metadata = admin_client(self.kafka_connection()).list_topics(timeout=2)
        return bool(metadata.brokers)

    def software(self, name: str) -> str:
        """What runs as ``name``, with its version."""
        if name == "kafka":
            return f"Apache Kafka {KAFKA_VERSION} (KRaft, broker+controller)"
        if name == "redis":
            with contextlib.suppress(Exception):
                out = subprocess.run([redis_binary(), "--version"], capture_output=True, text=True, check=False)  # noqa: S603
                version = next((w.split("=", 1)[1] for w in out.stdout.split() if w.startswith("v=")), "")
                return f"Redis {version}".strip()
            return "Redis"
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return f"moto {importlib.metadata.version('moto')}"
        return "moto"

    def _healthy(self, name: str) -> bool:
        port = self.ports[name]
        if not port_open(port):
            return False
        if name == "redis":
            s = self.client_settings()
            password = s.redis_password.get_secret_value() if s.redis_password else None
            client = redis_client(self.redis_url, password, str(s.redis_ca_file) if s.redis_ca_file else None)
            try:
                return bool(client.ping())
            finally:
                client.close()
        if name == "moto":
            with urllib.request.urlopen(f"{self.aws_endpoint}/moto-api/data.json", timeout=2) as resp:  # noqa: S310
                return bool(resp.status == 200)
        return self._kafka_answers()

    def _start(self, name: str) -> int:
        # A process of ours that just died (kill -9, a crash) may hold its port for a moment while it exits.
        deadline = time.monotonic() + 5.0
        while port_open(self.ports[name]) and time.monotonic() < deadline:
            time.sleep(0.1)
        if port_open(self.ports[name]):
            msg = (
                f"port {self.ports[name]} ({self.port_settings[name]}) is already in use by a process this "
                f"stack did not start; stop it or set {self.port_settings[name]} to a free port"
            )
            raise StackError(msg)
        cmd, env = self._command(name)
        log = self.log_file(name)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603 - fixed binaries, arguments from validated settings
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.dir,
                start_new_session=True,  # own session: survives the CLI, never gets its SIGHUP
            )
        start_time = None
        for _ in range(100):
            start_time = _proc_start_time(proc.pid)
            if start_time is not None:
                break
            time.sleep(0.01)
        record = {"pid": proc.pid, "start_time": start_time, "cmd": cmd, "port": self.ports[name]}
        self.pid_file(name).write_text(json.dumps(record))

        def ready() -> bool:
            if proc.poll() is not None:
                msg = f"{name} exited with code {proc.returncode}; see {log}"
                raise StackError(msg)
            return self._healthy(name)

        try:
            _wait_for(ready, name, START_TIMEOUT_S, log)
        except StackError:
            self._stop(name)
            raise
        return proc.pid

    def create_topics(self, timeout: float = START_TIMEOUT_S) -> list[str]:
        """Create the project's topics if missing; return the ones created now."""
        s = self.settings
        wanted = {s.kafka_topic_tweets: s.kafka_partitions, s.kafka_topic_dlq: 1, s.kafka_topic_scored: 1}
        try:
            replication = Replication(s.kafka_replication_factor, s.kafka_min_insync_replicas)
            return create_topics(self.kafka_connection(), wanted, timeout, replication)
        except ToneError as exc:
            raise StackError(str(exc)) from exc

    def _check_mode(self) -> None:
        """A state directory keeps the mode it was created in (the broker's users are made when it is formatted)."""
        marker = self.dir / "mode"
        mode = "secure" if self.secure else "plain"
        if not marker.exists():
            marker.write_text(mode + "\n")
            return
        made = marker.read_text().strip()
        if made != mode:
            msg = (
                f"the stack in {self.dir} was created {made} and TONE_STACK_SECURE now asks for {mode}: "
                "set it back, or use another TONE_STACK_DIR (or remove this one)"
            )
            raise StackError(msg)

    def up(self, log: Callable[[str], None] = lambda _m: None) -> dict[str, int]:
        """Start whatever is not running yet, wait until healthy, create topics. Returns name -> PID."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._check_mode()
        if self.secure:
            ensure_secrets(self.secrets.directory)
        pids = {}
        for name in self.SERVICES:
            pid = self.running_pid(name)
            if pid is not None:
                log(f"{name} already running (pid {pid})")
            else:
                t0 = time.monotonic()
                pid = self._start(name)
                log(f"{name} started on port {self.ports[name]} (pid {pid}) in {time.monotonic() - t0:.1f} s")
            pids[name] = pid
        created = self.create_topics()
        if created:
            log(f"created topics: {', '.join(created)}")
        return pids

    def _stop(self, name: str, timeout: float = 10.0) -> bool:
        pid = self.running_pid(name)
        self.pid_file(name).unlink(missing_ok=True)
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _proc_start_time(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if _proc_start_time(pid) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # The CLI that started it may still be our parent (tests, `make demo`): reap it so no zombie remains.
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        return True

    def down(self, log: Callable[[str], None] = lambda _m: None) -> list[str]:
        """Stop the services this stack started (by PID record), in reverse start order."""
        stopped = []
        for name in reversed(self.SERVICES):
            if self._stop(name):
                stopped.append(name)
                log(f"{name} stopped")
        return stopped

    def status(self) -> list[ServiceStatus]:
        """State of each service."""
        rows = []
        for name in self.SERVICES:
            pid = self.running_pid(name)
            if pid is None:
                state = "stale" if self.pid_file(name).exists() else "stopped"
            else:
                healthy = False
                with contextlib.suppress(Exception):
                    healthy = self._healthy(name)
                state = "running" if healthy else "unhealthy"
            address = {"kafka": self.bootstrap, "redis": self.redis_url, "moto": self.aws_endpoint}[name]
            rows.append(ServiceStatus(name, state, pid, address, self.log_file(name), self.software(name)))
        return rows

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
        s = self.client_settings()
        password = s.redis_password.get_secret_value() if s.redis_password else None
        client = redis_client(self.redis_url, password, str(s.redis_ca_file) if s.redis_ca_file else None)
        try:
            client.set(f"tone:check:{token}", token, ex=60)
            if client.get(f"tone:check:{token}") != token.encode():
                msg = "Redis check failed: a value written could not be read back"
                raise StackError(msg)
        finally:
            client.close()
        timings["redis_roundtrip_s"] = time.monotonic() - t0
        return timings
