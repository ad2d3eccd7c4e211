"""One node of the local stack as a process.

What every service module gives (:class:`Node`), and how the stack starts, finds and stops it (:class:`Processes`).

Each process writes a PID file (JSON with its kernel start time, so a recycled PID is never mistaken for ours) and a
log under the state directory. Only processes whose record matches are ever signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tone.errors import StackError

START_TIMEOUT_S = 60.0  # a JVM broker on 2 busy cores: 5-10 s measured, more while a test suite runs


@dataclass(frozen=True)
class ServiceStatus:
    """One row of `tone stack status`."""

    name: str
    state: str  # running | stopped | stale (PID file of a dead process) | unhealthy
    pid: int | None
    address: str
    log: Path
    software: str = ""
    role: str = ""


def proc_start_time(pid: int) -> int | None:
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


def wait_for(check: Callable[[], bool], what: str, timeout: float, log: Path) -> None:
    """Poll ``check`` until it is true; StackError with the log's last lines after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log.is_file() else "(no log)"
    msg = f"{what} did not become ready within {timeout:.0f} s; last lines of {log}:\n{tail}"
    raise StackError(msg)


class Node(ABC):
    """One process of a service: how to run it and how to tell that it is ready."""

    name: str  # PID and log file stem, and the status row ("redis", "kafka-2")
    port: int  # the port it takes client connections on
    port_setting: str  # the setting that moves that port (an error on a clash names it)
    role: str = ""  # e.g. "master", "replica of redis-1", "broker+controller"

    @property
    @abstractmethod
    def address(self) -> str:
        """What clients connect to."""

    @abstractmethod
    def command(self) -> tuple[list[str], dict[str, str]]:
        """Command line and environment (called just before the start: it may write configuration)."""

    @abstractmethod
    def healthy(self) -> bool:
        """It answers as its clients need (a TCP accept is not enough for a broker)."""

    @abstractmethod
    def software(self) -> str:
        """What runs, with its version."""

    def other_ports(self) -> Sequence[int]:
        """Ports it binds besides ``port`` (a controller, a cluster bus), checked free before the start."""
        return ()


class Processes:
    """The PID records and logs of the nodes under one state directory."""

    def __init__(self, directory: Path) -> None:
        """Records live in ``directory`` (``NAME.pid``), logs in ``directory/logs``."""
        self.dir = directory

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
        return pid if proc_start_time(pid) == start_time else None

    def spawn(self, node: Node) -> subprocess.Popen[bytes]:
        """Start ``node`` (its port must be free) and record its PID; not waiting for it to be ready."""
        # A process of ours that just died (kill -9, a crash) may hold its port for a moment while it exits.
        deadline = time.monotonic() + 5.0
        ports = [node.port, *node.other_ports()]
        while any(port_open(p) for p in ports) and time.monotonic() < deadline:
            time.sleep(0.1)
        if taken := [p for p in ports if port_open(p)]:
            msg = (
                f"port {taken[0]} ({node.name}, from {node.port_setting}) is already in use by a process this "
                f"stack did not start; stop it or set {node.port_setting} to a free port"
            )
            raise StackError(msg)
        cmd, env = node.command()
        log = self.log_file(node.name)
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
            start_time = proc_start_time(proc.pid)
            if start_time is not None:
                break
            time.sleep(0.01)
        record = {"pid": proc.pid, "start_time": start_time, "cmd": cmd, "port": node.port}
        self.pid_file(node.name).write_text(json.dumps(record))
        return proc

    def wait_ready(self, node: Node, proc: subprocess.Popen[bytes] | None, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until ``node`` is healthy; stop it and raise if it exits or never gets there."""
        log = self.log_file(node.name)

        def ready() -> bool:
            if proc is not None and proc.poll() is not None:
                msg = f"{node.name} exited with code {proc.returncode}; see {log}"
                raise StackError(msg)
            return node.healthy()

        try:
            wait_for(ready, node.name, timeout, log)
        except StackError:
            self.stop(node.name)
            raise

    def stop(self, name: str, timeout: float = 10.0) -> bool:
        """SIGTERM our process for ``name`` (SIGKILL after ``timeout``); False if none was running."""
        pid = self.running_pid(name)
        self.pid_file(name).unlink(missing_ok=True)
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while proc_start_time(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc_start_time(pid) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # The CLI that started it may still be our parent (tests, `make demo`): reap it so no zombie remains.
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        return True

    def status(self, node: Node) -> ServiceStatus:
        """``node``'s row of `tone stack status`."""
        pid = self.running_pid(node.name)
        if pid is None:
            state = "stale" if self.pid_file(node.name).exists() else "stopped"
        else:
            healthy = False
            with contextlib.suppress(Exception):
                healthy = node.healthy()
            state = "running" if healthy else "unhealthy"
        log = self.log_file(node.name)
        return ServiceStatus(node.name, state, pid, node.address, log, node.software(), node.role)
