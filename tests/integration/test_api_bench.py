"""`tone bench api` end to end: seeded users, `tone serve` with one and two worker processes, wrk against it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tone import envvars

pytestmark = pytest.mark.integration


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make setup installs it as root)")
def test_bench_api_serves_every_lookup_from_both_workers_and_cleans_up(settings):
    tone = Path(sys.executable).parent / "tone"
    env = {**os.environ, envvars.REDIS_URL: settings.redis_url}
    out = subprocess.run(
        [tone, "bench", "api", "--users", "500", "--seconds", "2", "--workers", "1", "--workers", "2", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["workers"] for r in rows] == [1, 2]
    for r in rows:
        assert r["requests"] > 100 and r["lookups_per_s"] > 0
        assert r["non_2xx"] == 0 and r["socket_errors"] == 0  # every seeded user found
        assert 0 < r["server_cpu_share"] <= 1 and 0 < r["wrk_cpu_share"] <= 1
    # Two processes on one port (SO_REUSEPORT): both took connections, so the server used more than one core's
    # share of CPU. One worker cannot pass 1/cores.
    assert rows[0]["server_cpu_share"] <= 1 / rows[0]["cores"] + 0.05
    if rows[1]["cores"] > 1:
        assert rows[1]["server_cpu_share"] > 1 / rows[1]["cores"] + 0.05
    assert not list(redis.Redis.from_url(settings.redis_url).scan_iter("apibench-*", count=1000))
