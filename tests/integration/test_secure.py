"""The real services with security on: Kafka SASL_SSL/SCRAM-SHA-512 and Redis with a password over TLS.

A second local stack (TONE_STACK_SECURE) for this module. Producer, stream (both Kafka sources), lookups and the
API work with the credentials; a wrong password fails with a message that says what to check and never shows a
secret.
"""

import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from devstack.stack import LocalStack
from serving.api import create_app
from tests.conftest import fresh_topics, stack_settings
from tests.helpers import settings_env
from tests.integration.test_stream import events, expected_counts, produce, redis_counts, run
from tone import envvars

pytestmark = pytest.mark.integration

WRONG = "not-the-password-4f1c"


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    local = LocalStack(stack_settings(tmp_path_factory.mktemp("secure"), stack_secure=True))
    try:
        local.up()
        yield local
    finally:
        local.down()


@pytest.fixture
def s(secure):
    return fresh_topics(secure.client_settings(), key_prefix="s")


SECURE_FIELDS = (
    "kafka_bootstrap_servers",
    "kafka_topic_tweets",
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_ssl_ca_file",
    "redis_url",
    "redis_password",
    "redis_ca_file",
    "redis_key_prefix",
)


def tone_env(settings, **changes):
    return settings_env(settings, SECURE_FIELDS, **{envvars.KAFKA_DELIVERY_TIMEOUT_S: "20"}, **changes)


def tone(*args, env):
    code = "import sys; from tone_cli.main import app; sys.argv = ['tone', *sys.argv[1:]]; app()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False, timeout=120
    )


def test_the_stack_runs_secure_and_plain_clients_are_refused(secure):
    s = secure.client_settings()
    assert (s.kafka_security_protocol, s.redis_url.split(":")[0]) == ("SASL_SSL", "rediss")
    assert oct(secure.secrets.password_file("redis").stat().st_mode & 0o777) == "0o600"
    check = tone(
        "stack",
        "check",
        "--messages",
        "20",
        env={**os.environ, envvars.STACK_DIR: str(secure.dir), envvars.STACK_SECURE: "true"}
        | {
            envvars.STACK_KAFKA_PORT: str(secure.ports["kafka"]),
            envvars.STACK_KAFKA_CONTROLLER_PORT: str(s.stack_kafka_controller_port),
            envvars.STACK_REDIS_PORT: str(secure.ports["redis"]),
            envvars.STACK_MOTO_PORT: str(secure.ports["moto"]),
        },
    )
    assert check.returncode == 0, check.stderr
    # the `tone stack env` lines read the secrets from their files when evaluated: none is printed
    env_lines = "\n".join(f"{k}={v}" for k, v in secure.client_env().items())
    assert s.kafka_sasl_password.get_secret_value() not in env_lines
    assert "$(cat " in env_lines


@pytest.mark.parametrize("source", ["python", "native"])
def test_producer_stream_lookups_and_api_work_with_the_credentials(s, spark, tmp_path, source):
    evs = events(0, 300)
    produce(s, evs)
    run(spark, s, tmp_path / "ckpt", source=source)
    assert redis_counts(s, {e.user_id for e in evs}) == expected_counts(evs)

    out = tone("lookup", "user0", "--json", env=tone_env(s))
    assert out.returncode == 0, out.stderr
    assert f'"tweets": {sum(expected_counts(evs)["user0"].values())}' in out.stdout
    body = TestClient(create_app(s)).get("/users/user0/tone").json()
    assert body["tweets"] == sum(expected_counts(evs)["user0"].values())


def test_a_wrong_kafka_password_fails_fast_and_says_what_to_check(s, tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "1", "user_id": "u", "text": "hi", "created_at": "2026-11-23T10:00:00Z"}\n')
    out = tone("produce", str(path), env=tone_env(s, **{envvars.KAFKA_SASL_PASSWORD: WRONG}))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "refused this client" in out.stderr and "TONE_KAFKA_SASL_PASSWORD" in out.stderr
    assert WRONG not in out.stdout + out.stderr
    assert s.kafka_sasl_password.get_secret_value() not in out.stdout + out.stderr


def test_a_wrong_redis_password_says_what_to_check_and_shows_no_secret(s):
    out = tone("lookup", "user0", env=tone_env(s, **{envvars.REDIS_PASSWORD: WRONG}))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "refused the credentials" in out.stderr and "TONE_REDIS_PASSWORD" in out.stderr
    assert "Traceback" not in out.stderr
    assert WRONG not in out.stdout + out.stderr
    no_tls = tone("lookup", "user0", env=tone_env(s, **{envvars.REDIS_URL: s.redis_url.replace("rediss", "redis")}))
    assert no_tls.returncode == 1
    assert "rediss://" in no_tls.stderr  # the hint for a TLS server
