"""`tone bench soak`: the stream at a steady rate for minutes; the memory of the driver, its JVM and the workers.

A stream runs for weeks, so nothing may grow per batch. The stream runs on fresh topics at ``rate`` tweets/s for
``minutes`` (a producer in a process of its own); after every batch the resident set sizes (Linux ``/proc``) of the
driver's Python process, the Spark driver JVM and the Python workers are sampled. Growth per batch is the
least-squares slope of RSS over the batch number, after the first ``warmup_share`` of the batches (JIT, caches, the
model loading in each worker, and the bounded histories the driver keeps: its last 100 batch reports, Spark's last
100 jobs, stages and SQL executions, all fill up first).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.replay import _bench_settings, _cleanup, _create_topics, _produce
from tone.settings import Settings

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss(pid: int) -> int:
    """Resident bytes of one process (0 if it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _children(pid: int) -> dict[int, str]:
    """Every descendant of ``pid``: pid -> command name."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
        names[int(entry.name)] = name
    out, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for child, pp in parents.items():
            if pp == parent and child not in out:
                out[child] = names[child]
                todo.append(child)
    return out


@dataclass
class Sample:
    """One sample after a batch."""

    batch: int
    at: float
    driver: int
    jvm: int
    workers: int


def sample(batch: int, root: int | None = None) -> Sample:
    """RSS of this process, its java descendants (the Spark driver) and their descendants (the Python workers).

    A producer this process started (not under the JVM) is left out. Workers fork from one daemon, so their RSS
    counts shared pages once per worker: compare its growth, not its size.
    """
    me = os.getpid() if root is None else root
    jvms = [p for p, name in _children(me).items() if name == "java"]
    workers = {p for j in jvms for p in _children(j)}
    return Sample(batch, time.time(), _rss(me), sum(_rss(p) for p in jvms), sum(_rss(p) for p in workers))


def jvm_heap_after_gc(batch: int, root: int | None = None) -> tuple[int, int] | None:
    """(batch, bytes of the Spark driver JVM's heap in use right after a full GC), or None without jcmd/jstat.

    RSS alone cannot tell a leak from a heap that fills with garbage until its next full collection (the serial GC
    of a local driver promotes short-lived objects too): the live heap after a forced full GC can.
    """
    jcmd, jstat = shutil.which("jcmd"), shutil.which("jstat")
    jvms = [p for p, name in _children(os.getpid() if root is None else root).items() if name == "java"]
    if not (jcmd and jstat and jvms):
        return None
    subprocess.run([jcmd, str(jvms[0]), "GC.run"], capture_output=True, check=False, timeout=60)
    out = subprocess.run([jstat, "-gc", str(jvms[0])], capture_output=True, text=True, check=False, timeout=60)
    header, values = (line.split() for line in out.stdout.strip().splitlines()[:2])
    row = dict(zip(header, values, strict=False))
    used_kb = sum(float(row.get(k, 0)) for k in ("S0U", "S1U", "EU", "OU"))
    return batch, round(used_kb * 1024)


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    if n < 2:  # noqa: PLR2004
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def run_soak_bench(
    settings: Settings,
    *,
    minutes: float,
    rate: float,
    scorer: str,
    trigger_seconds: float = 1.0,
    warmup_share: float = 0.5,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the soak and return the samples and the growth per batch of each process group."""
    from benchmarks.scorers import bench_texts
    from streaming.job import ToneStream, build_spark

    s = _bench_settings(settings)
    _create_topics(s)
    texts = bench_texts(settings, 4200)
    samples: list[Sample] = []
    heaps: list[tuple[int, int]] = []
    spark = build_spark(settings.spark_master, "tone-bench-soak", jars_dir=settings.jars_dir)
    n = round(rate * minutes * 60)
    settle_at = round(minutes * 60 / trigger_seconds * warmup_share)  # about where the measured half starts

    def on_batch(report: Any) -> None:
        samples.append(sample(report.batch_id))
        if report.batch_id >= settle_at and not heaps and (heap := jvm_heap_after_gc(report.batch_id)):
            heaps.append(heap)

    try:
        with tempfile.TemporaryDirectory() as tmp:
            job = ToneStream(
                s,
                scorer=scorer,
                checkpoint=Path(tmp) / "ckpt",
                query_name=f"soak-{uuid.uuid4().hex[:6]}",
                trigger_seconds=trigger_seconds,
                on_batch=on_batch,
            )
            query = job.start(spark)
            say(f"soak: {n:,} tweets at {rate:.0f}/s ({minutes:g} min), trigger {trigger_seconds:g} s")
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(1) as pool:
                pending = pool.apply_async(_produce, (s, texts, n, 3, rate))
                next_report = time.monotonic() + 60
                while not pending.ready():
                    if not query.isActive:
                        msg = f"the stream stopped during the soak: {query.exception()}"
                        raise RuntimeError(msg)
                    if time.monotonic() > next_report and samples:
                        last = samples[-1]
                        say(
                            f"  batch {last.batch}: driver {last.driver / 2**20:.1f} MiB, JVM {last.jvm / 2**20:.1f} "
                            f"MiB, workers {last.workers / 2**20:.1f} MiB"
                        )
                        next_report += 60
                    time.sleep(0.5)
            query.processAllAvailable()
            if samples and (heap := jvm_heap_after_gc(samples[-1].batch)):
                heaps.append(heap)
            query.stop()
    finally:
        spark.stop()
        _cleanup(s)
    settled = samples[int(len(samples) * warmup_share) :]
    growth = {kind: slope([(x.batch, getattr(x, kind)) for x in settled]) for kind in ("driver", "jvm", "workers")}
    heap_growth = (heaps[-1][1] - heaps[0][1]) / (heaps[-1][0] - heaps[0][0]) if len(heaps) == 2 else None  # noqa: PLR2004
    return {
        "jvm_heap_after_full_gc": [{"batch": b, "bytes": v} for b, v in heaps],
        "jvm_heap_growth_bytes_per_batch": round(heap_growth, 1) if heap_growth is not None else None,
        "minutes": minutes,
        "rate": rate,
        "scorer": scorer,
        "batches": len(samples),
        "measured_batches": len(settled),
        "records": job.records,
        "growth_bytes_per_batch": {k: round(v, 1) for k, v in growth.items()},
        "first": samples[0].__dict__ if samples else None,
        "settled_first": settled[0].__dict__ if settled else None,
        "last": samples[-1].__dict__ if samples else None,
    }
