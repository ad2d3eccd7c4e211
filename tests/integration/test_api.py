import os
import subprocess
import sys
import uuid

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from serving.api import create_app
from tone import envvars
from tone.aggregates.deltas import Scored, batch_deltas
from tone.aggregates.factory import open_store

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
    operation = client.get("/openapi.json").json()["paths"]["/users/{user_id}/tone"]["get"]
    assert {"200", "404", "422"} <= set(operation["responses"])


def test_api_errors(api_settings):
    client = TestClient(create_app(api_settings))
    assert client.get("/users/nobody/tone").status_code == 404
    assert client.get("/users/bad%20id/tone").status_code == 404  # a valid id nobody tweeted from
    assert client.get("/users/bad%00id/tone").status_code == 422
    assert client.get("/users/" + "x" * 257 + "/tone").status_code == 422
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


@pytest.mark.parametrize("user_id", ["a:recent", "a:h:2026112310", "*", "{x}", "a/b", "ünï 🙂", " spaced "])
def test_any_id_gets_its_own_data_or_a_404_never_an_internal_key(api_settings, user_id):
    from urllib.parse import quote

    client = TestClient(create_app(api_settings), raise_server_exceptions=False)
    path = f"/users/{quote(user_id, safe='')}/tone"
    assert client.get(path).status_code == 404  # never seen; and "a:recent" is not a's recent list
    store = open_store(api_settings)
    store.apply_range(
        "h", "tweets", 1, 0, 0, batch_deltas([Scored(user_id, "t1", 1_700_000_000, "negative", NEG, -0.7)], 3600, 5)
    )
    store.apply_range(
        "h", "tweets", 2, 0, 0, batch_deltas([Scored("a", "t2", 1_700_000_000, "positive", POS, 0.7)], 3600, 5)
    )
    body = client.get(path).json()
    assert (body["user_id"], body["tweets"], body["counts"]) == (user_id, 1, {"negative": 1})


LOOKUP_IDS = ["grumpy_1", "sunny.2", "nobody", "a/b", "a/tone", "ünï 🙂", " spaced ", "'\"", "x" * 256, "x" * 257]
LOOKUP_IDS += ["", " ", "bad\x00id", "a\n", "\ud800", "%zz", "a?b"]


@pytest.mark.parametrize("user_id", LOOKUP_IDS)
def test_the_fast_lookup_answers_byte_for_byte_as_the_declared_route(api_settings, user_id):
    from urllib.parse import quote

    store = open_store(api_settings)
    store.apply_range(
        "f", "tweets", 0, 0, 0, batch_deltas([Scored("a/tone", "t9", 1_700_000_000, "negative", NEG, -0.7)], 3600, 5)
    )
    fast = TestClient(create_app(api_settings), raise_server_exceptions=False)
    full = TestClient(create_app(api_settings, fast_lookups=False), raise_server_exceptions=False)
    path = f"/users/{quote(user_id, safe='/', errors='surrogatepass')}/tone"
    answers = [c.get(path) for c in (fast, full)]
    assert answers[0].status_code == answers[1].status_code
    assert answers[0].content == answers[1].content
    for header in ("content-type", "content-length"):
        assert answers[0].headers[header] == answers[1].headers[header]
    # counted alike: the same route label (the template, or "unmatched" where the router matches nothing)
    counted = [
        [ln for ln in c.get("/metrics").text.splitlines() if ln.startswith("tone_api_requests_total{")]
        for c in (fast, full)
    ]
    assert counted[0] == counted[1] and len(counted[0]) == 1
    if answers[0].status_code == 200:
        assert 'route="/users/{user_id:path}/tone"' in counted[0][0]


def test_the_fast_lookup_serves_a_known_user_and_leaves_other_routes_alone(api_settings, monkeypatch):
    import fastapi.routing

    encoded = []  # FastAPI's own response encoding, which the fast path skips
    serialize = fastapi.routing.serialize_response
    monkeypatch.setattr(fastapi.routing, "serialize_response", lambda *a, **k: encoded.append(1) or serialize(*a, **k))
    client = TestClient(create_app(api_settings))
    assert client.get("/users/grumpy_1/tone").json()["tweets"] == 3
    assert encoded == []
    assert TestClient(create_app(api_settings, fast_lookups=False)).get("/users/grumpy_1/tone").status_code == 200
    assert encoded == [1]
    assert client.get("/users/nobody/tone").json() == {"detail": "no tweets seen from user 'nobody'"}
    assert client.get("/users/grumpy_1/hourly", params={"hours": 2}).status_code == 200
    assert client.head("/users/grumpy_1/tone").status_code == 405  # HEAD is FastAPI's answer, not the fast path's
    assert client.get("/users/tone").status_code == 404


def test_the_api_conforms_to_its_openapi_schema_for_generated_requests(api_settings):
    """schemathesis generates requests from /openapi.json: every answer is documented, none is a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, settings

    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(api_settings))
    failures = []

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case):
        response = case.call()
        assert response.status_code < 500, (case.path, response.status_code)
        case.validate_response(response)

    for operation in schema.get_all_operations():
        op = operation.ok()
        try:
            op.as_strategy()  # noqa: B018 - builds the request strategy
            from hypothesis import given

            given(op.as_strategy())(check)()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure
            failures.append(f"{op.method.upper()} {op.path}: {exc}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("access_log", [False, True])
def test_tone_serve_writes_an_access_log_only_when_asked(api_settings, access_log):
    import socket
    import time
    import urllib.error
    import urllib.request
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        envvars.REDIS_URL: api_settings.redis_url,
        envvars.REDIS_KEY_PREFIX: api_settings.redis_key_prefix,
        envvars.API_ACCESS_LOG: str(access_log).lower(),
    }
    tone = Path(sys.executable).parent / "tone"
    server = subprocess.Popen(
        [tone, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/users/grumpy_1/tone", timeout=2) as r:
                    assert r.status == 200
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None and time.monotonic() < deadline, "tone serve did not answer"
                time.sleep(0.2)
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode()
    assert ("GET /users/grumpy_1/tone HTTP/1.1" in output) is access_log, output


def test_erasure_needs_the_token_and_removes_the_user_everywhere(api_settings):
    without = TestClient(create_app(api_settings))
    assert without.delete("/users/grumpy_1").status_code in (404, 405)  # no token set: the API is read-only
    assert without.get("/users/grumpy_1/tone").status_code == 200
    app = create_app(api_settings.model_copy(update={"api_token": SecretStr("s3cret")}))
    client = TestClient(app)
    assert client.delete("/users/grumpy_1").status_code == 401
    assert client.delete("/users/grumpy_1", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/users/grumpy_1/tone").status_code == 200  # a refused erasure erased nothing
    assert client.delete("/users/bad%00id", headers={"Authorization": "Bearer s3cret"}).status_code == 422
    answer = client.delete("/users/grumpy_1", headers={"Authorization": "Bearer s3cret"})
    assert answer.json() == {"user_id": "grumpy_1", "erased": True}
    assert client.get("/users/grumpy_1/tone").status_code == 404
    ranked = [u["user_id"] for u in client.get("/users/top", params={"by": "negative"}).json()["users"]]
    assert ranked == ["sunny.2"]
    again = client.delete("/users/grumpy_1", headers={"Authorization": "Bearer s3cret"})
    assert again.json() == {"user_id": "grumpy_1", "erased": False}  # idempotent
    assert client.get("/users/sunny.2/tone").json()["tweets"] == 2  # nobody else's keys


def test_tone_forget_asks_first_then_erases(api_settings):
    env = {
        **os.environ,
        envvars.REDIS_URL: api_settings.redis_url,
        envvars.REDIS_KEY_PREFIX: api_settings.redis_key_prefix,
    }
    tone = [sys.executable, "-m", "tone_cli.main"]
    kept = subprocess.run(
        check=False, args=[*tone, "forget", "sunny.2"], input="n\n", capture_output=True, text=True, env=env
    )
    assert kept.returncode == 1
    store = open_store(api_settings)
    assert store.user("sunny.2") is not None
    gone = subprocess.run(
        check=False, args=[*tone, "forget", "sunny.2", "--yes"], capture_output=True, text=True, env=env
    )
    assert gone.returncode == 0, gone.stderr
    assert "erased" in gone.stdout
    assert store.user("sunny.2") is None
    assert "sunny.2" in store.forgotten(["sunny.2"])
    bad = subprocess.run(
        check=False, args=[*tone, "forget", "bad\x01id", "--yes"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2 and "user_id holds a control character" in bad.stderr
