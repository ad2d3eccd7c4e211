"""The soak benchmark's arithmetic and process sampling (benchmarks/soak.py)."""

import subprocess
import sys

import pytest

from benchmarks.soak import sample, slope


def test_slope_is_the_growth_per_batch():
    assert slope([(b, 1000 + 512 * b) for b in range(10)]) == pytest.approx(512)
    assert slope([(b, 7) for b in range(10)]) == 0
    assert slope([(0, 1)]) == 0


def test_a_sample_counts_this_process_and_leaves_out_children_outside_a_jvm():
    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(64 << 20); time.sleep(30)"])
    try:
        s = sample(3)
        assert s.batch == 3
        assert s.driver > 10 << 20
        assert (s.jvm, s.workers) == (0, 0)  # no Spark here: the child is not a Python worker (a producer, say)
    finally:
        child.kill()
        child.wait()


def test_without_a_spark_jvm_there_is_no_heap_to_measure():
    from benchmarks.soak import jvm_heap_after_gc

    assert jvm_heap_after_gc(5) is None
