import os
import subprocess
import sys
import uuid

import pytest
import redis
from fastapi.testclient import TestClient

from serving.api import create_app
from tone import envvars
from tone.aggregates.deltas import Scored, batch_deltas
from tone.aggregates.redis_store import open_store

pytestmark = pytest.mark.integration

NEG = {"negative": 0.8, "neutral": 0.1, "positive": 0.1}
POS = {"negative": 0.1, "neutral": 0.1, "positive": 0.8}


@pytest.fixture
def api_settings(settings):
    s = settings.model_copy(update={"redis_key_prefix": f"api{uuid.uuid4().hex[:6]}:", "top_min_count": 2})
    tweets = [Scored("grumpy_1", f"g{i}", 1_700_000_000 + i, "negative", NEG, -0.7, "ugh", "v1") for i in range(3)]
    tweets += [Scored("sunny.2", f"s{i}", 1_700_000_000 + i, "positive", POS, 0.7, "yay", "v1") for i in range(2)]
    open_store(s).apply_range("q", "tweets", 0, 0, 4, batch_deltas(tweets, 3600, 10))
    yield s
    client = redis.Redis.from_url(s.redis_url)
    for key in client.scan_iter(f"{s.redis_key_prefix}*"):
        client.delete(key)


def test_api_answers_from_redis(api_settings):
    client = TestClient(create_app(api_settings))
    body = client.get("/users/grumpy_1/tone").json()
    assert body["tweets"] == 3 and body["dominant_label"] == "negative"
    assert body["counts"] == {"negative": 3}
    assert body["mean_probs"]["negative"] == pytest.approx(0.8)
    assert body["last_seen"].startswith("2023-11-14T22:13:22")
    assert len(body["recent"]) == 3

    top = client.get("/users/top", params={"by": "positive", "n": 5}).json()
    assert top["users"][0] == {"user_id": "sunny.2", "mean_p_positive": 0.8}
    assert client.get("/healthz").json()["status"] == "ok"
    assert "/users/{user_id}/tone" in client.get("/openapi.json").json()["paths"]


def test_api_errors(api_settings):
    client = TestClient(create_app(api_settings))
    assert client.get("/users/nobody/tone").status_code == 404
    assert client.get("/users/bad%20id/tone").status_code == 422
    assert client.get("/users/top", params={"by": "neutral"}).status_code == 422
    assert client.get("/users/top", params={"n": 0}).status_code == 422


def test_lookup_cli_and_light_imports(api_settings):
    env = {
        **os.environ,
        envvars.REDIS_URL: api_settings.redis_url,
        envvars.REDIS_KEY_PREFIX: api_settings.redis_key_prefix,
        envvars.TOP_MIN_COUNT: "2",
    }
    code = (
        "import sys\nfrom tone_cli.main import app\nsys.argv = ['tone', *sys.argv[1:]]\n"
        "try:\n    app()\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
        "heavy = [m for m in ('torch', 'pyspark', 'transformers') if m in sys.modules]\n"
        "print('HEAVY', heavy)\nsys.exit(code)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "lookup", "grumpy_1", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert '"tweets": 3' in out.stdout
    assert "HEAVY []" in out.stdout
    missing = subprocess.run(
        [sys.executable, "-c", code, "lookup", "nobody"], capture_output=True, text=True, env=env, check=False
    )
    assert missing.returncode == 1
    top = subprocess.run(
        [sys.executable, "-c", code, "top", "--by", "negative", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert '"user_id": "grumpy_1"' in top.stdout
    app_import = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, serving.api; print([m for m in ('torch', 'pyspark', 'transformers') if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert app_import.stdout.strip() == "[]"
