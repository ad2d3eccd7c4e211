"""The soak benchmark's arithmetic and process sampling (benchmarks/soak.py)."""

import subprocess
import sys
import time

import pytest

from benchmarks.soak import jvm_heap_after_gc, sample, slope


def test_slope_is_the_growth_per_batch():
    assert slope([(b, 1000 + 512 * b) for b in range(10)]) == pytest.approx(512)
    assert slope([(b, 7) for b in range(10)]) == 0
    assert slope([(0, 1)]) == 0


# A driver of our own (this test session may run a Spark session of its own beside): it holds 64 MiB and starts a
# child outside any JVM, as the soak's producer is.
DRIVER = (
    "import subprocess, sys, time; x = bytearray(64 << 20); "
    "subprocess.Popen([sys.executable, '-c', 'import time; y = bytearray(32 << 20); time.sleep(30)']); time.sleep(30)"
)


def test_a_sample_counts_the_driver_and_leaves_out_children_outside_a_jvm():
    driver = subprocess.Popen([sys.executable, "-c", DRIVER])
    try:
        for _ in range(100):  # until the driver has touched its 64 MiB and started its child
            s = sample(3, root=driver.pid)
            if s.driver > 60 << 20:
                break
            time.sleep(0.05)
        assert s.batch == 3
        assert s.driver > 60 << 20
        assert (s.jvm, s.workers) == (0, 0)  # no Spark under it: its child is not a Python worker
        assert jvm_heap_after_gc(5, root=driver.pid) is None
    finally:
        driver.kill()
        driver.wait()
