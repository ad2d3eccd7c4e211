"""`tone bench api`: lookups per second through `tone serve`, driven by wrk (a load generator outside Python).

It seeds ``users`` users (``tweets`` each, counted with the stream's own apply) under a key prefix of its own in
``TONE_REDIS_URL``, starts `tone serve` on a free port for each ``--workers`` value (TONE_API_WORKERS), and runs
``wrk --latency`` with a Lua script that asks for a random seeded user on every request
(``GET /users/{id}/tone``). It prints lookups/s, p50/p99 and errors, with the CPU the load generator and the server
used as shares of the machine's cores: on a 2-core machine the load generator's share is capacity the server did
not get. The prefix is removed afterwards.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.store import PROBS, TEXT
from tone.aggregates.deltas import Scored
from tone.aggregates.factory import open_store
from tone.aggregates.store import count_records
from tone.errors import ToneError
from tone.settings import Settings

LABELS = ("negative", "neutral", "positive")
WRK_SCRIPT = """
math.randomseed(7)
request = function()
  return wrk.format("GET", string.format("/users/{prefix}%09d/tone", math.random(0, {last})))
end
"""


def user_id(i: int) -> str:
    """The seeded users' ids (wrk's script builds the same)."""
    return f"apibench{i:09d}"


def seed(store: Any, users: int, tweets: int, t0: float = 1_795_428_000.0) -> None:
    """``users`` users with ``tweets`` tweets each, counted as the stream counts them."""
    records = [
        (
            o,
            Scored(
                user_id(o % users), str(1850000000000000000 + o), t0 + o / 1000, LABELS[o % 3], PROBS, 0.4, TEXT, "v"
            ),
        )
        for o in range(users * tweets)
    ]
    count_records(store, "apibench", "t", 0, records, len(records) - 1)


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests/s, latency percentiles (ms) and error counts from ``wrk --latency`` output."""
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def ms(label: str) -> float:
        found = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
        if found is None:
            msg = f"no {label}% latency in wrk's output:\n{text}"
            raise ToneError(msg)
        return round(float(found.group(1)) * units[found.group(2)], 2)

    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    requests = re.search(r"(\d+) requests in", text)
    if rate is None or requests is None:
        msg = f"wrk printed no request rate:\n{text}"
        raise ToneError(msg)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "lookups_per_s": round(float(rate.group(1))),
        "requests": int(requests.group(1)),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(g) for g in sockets.groups()) if sockets else 0,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its children (uvicorn's worker processes) so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(stat.parent.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            msg = f"tone serve exited with {server.returncode} before it answered"
            raise ToneError(msg)
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):  # noqa: S310 - our own loopback server
                return
        except OSError:
            time.sleep(0.2)
    msg = f"tone serve did not answer {url}/healthz within {timeout:.0f} s"
    raise ToneError(msg)


def _one(workers: int, env: dict[str, str], script: Path, connections: int, seconds: int) -> dict[str, Any]:
    """One server with ``workers`` processes under wrk; the server is stopped afterwards."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    tone = shutil.which("tone", path=str(Path(sys.executable).parent)) or "tone"
    server = subprocess.Popen(  # noqa: S603 - our own CLI
        [tone, "serve", "--port", str(port)],
        env=env | {"TONE_API_WORKERS": str(workers), "TONE_LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_ready(url, server)
        wrk = ["wrk", "-t1", f"-c{connections}", "-s", str(script), url]
        subprocess.run([*wrk, "-d2s"], capture_output=True, check=True)  # noqa: S603 - warm-up: pools, imports
        cpu0, child0, wall0 = _tree_cpu_s(server.pid), resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
        out = subprocess.run([*wrk, f"-d{seconds}s", "--latency"], capture_output=True, text=True, check=True)  # noqa: S603
        wall = time.monotonic() - wall0
        child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cores = os.cpu_count() or 1
        wrk_cpu = (child1.ru_utime - child0.ru_utime) + (child1.ru_stime - child0.ru_stime)
        server_cpu = _tree_cpu_s(server.pid) - cpu0
        return {
            "workers": workers,
            "connections": connections,
            "seconds": seconds,
            **parse_wrk(out.stdout),
            "wrk_cpu_share": round(wrk_cpu / (wall * cores), 3),
            "server_cpu_share": round(server_cpu / (wall * cores), 3),
            "cores": cores,
        }
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()


def run_api_bench(  # noqa: PLR0913 - the bench's knobs
    settings: Settings,
    *,
    users: int,
    tweets: int,
    workers: list[int],
    connections: int,
    seconds: int,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """One row per ``workers`` value (see the module docstring); each row after the first has ``vs_first``."""
    if shutil.which("wrk") is None:
        msg = "tone bench api needs wrk, the HTTP load generator: apt-get install wrk (make setup installs it as root)"
        raise ToneError(msg)
    prefix = f"apibench-{uuid.uuid4().hex[:8]}:"
    store = open_store(settings, prefix=prefix)
    env = dict(os.environ) | {"TONE_REDIS_KEY_PREFIX": prefix}
    rows: list[dict[str, Any]] = []
    try:
        say(f"seeding {users:,} users with {tweets} tweets each under {prefix}")
        seed(store, users, tweets)
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "lookups.lua"
            script.write_text(WRK_SCRIPT.replace("{prefix}", "apibench").replace("{last}", str(users - 1)))
            for n in workers:
                say(f"tone serve with {n} worker process(es): wrk -t1 -c{connections} -d{seconds}s")
                row = _one(n, env, script, connections, seconds)
                rows.append(row if not rows else row | {"vs_first": row["lookups_per_s"] / rows[0]["lookups_per_s"]})
    finally:
        for key in store.client.scan_iter(f"{prefix}*", count=10_000):
            store.client.delete(key)
    return rows
