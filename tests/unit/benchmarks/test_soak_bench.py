"""The soak benchmark's arithmetic and process sampling (benchmarks/soak.py)."""

import subprocess
import sys

import pytest

from benchmarks.soak import sample, slope


def test_slope_is_the_growth_per_batch():
    assert slope([(b, 1000 + 512 * b) for b in range(10)]) == pytest.approx(512)
    assert slope([(b, 7) for b in range(10)]) == 0
    assert slope([(0, 1)]) == 0


def test_a_sample_sees_this_process_and_its_children():
    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(64 << 20); time.sleep(30)"])
    try:
        for _ in range(50):
            s = sample(3)
            if s.workers > 60 << 20:
                break
            subprocess.run([sys.executable, "-c", "import time; time.sleep(0.1)"], check=True)
        assert s.batch == 3
        assert s.driver > 10 << 20
        assert s.workers > 60 << 20  # the child's 64 MiB, counted with the non-java descendants
        assert s.jvm == 0
    finally:
        child.kill()
        child.wait()
