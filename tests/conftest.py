"""Shared fixtures. Integration tests get one real local stack per session (Apache Kafka, Redis, moto).

There is no skip when a service is missing: the stack fixture raises, and the tests that need it error out.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devstack.stack import LocalStack
from tone.kafka.admin import create_topics
from tone.kafka.config import KafkaConnection
from tone.settings import Settings, load_settings


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports: each socket stays bound until all are picked, so the kernel cannot hand one out
    twice (two separate picks once gave Kafka's broker and controller the same port)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def stack_settings(state_dir: Path, **overrides: object) -> Settings:
    """Settings for a stack on free ports in ``state_dir``, with clients pointed at it."""
    kafka, controller, redis_port, moto = free_ports(4)
    return load_settings(
        stack_dir=state_dir,
        stack_kafka_port=kafka,
        stack_kafka_controller_port=controller,
        stack_redis_port=redis_port,
        stack_moto_port=moto,
        kafka_bootstrap_servers=f"127.0.0.1:{kafka}",
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        aws_endpoint_url=f"http://127.0.0.1:{moto}",
        **overrides,
    )


@pytest.fixture(autouse=True)
def _fresh_cli_settings() -> Iterator[None]:
    """The CLI's settings are cached per process (tone.settings.get_settings): each test's CliRunner calls read the
    environment they are given, never an earlier test's."""
    from tone.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = LocalStack(stack_settings(tmp_path_factory.mktemp("stack")))
    try:
        local.up()
        yield local
    finally:
        local.down()


@pytest.fixture(scope="session")
def settings(stack: LocalStack) -> Settings:
    return stack.settings


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An MLflow tracking server on SQLite, started as `tone stack up` starts it (TONE_STACK_MLFLOW), only for the
    tests that ask: its tracking URI."""
    from devstack.mlflow_server import MlflowNode
    from devstack.process import Processes

    directory = tmp_path_factory.mktemp("mlflow")
    processes = Processes(directory)
    node = MlflowNode(free_port(), directory / "mlflow")
    processes.wait_ready(node, processes.spawn(node))
    try:
        yield node.address
    finally:
        processes.stop(node.name)


@pytest.fixture(params=["index", "sagemaker", "mlflow"])
def registry_settings(request, isolated, tmp_path):
    """``isolated`` settings on a fresh registry of each backend: the project's index on a directory, SageMaker Model
    Registry (moto) with its artifacts on S3, MLflow's (a local tracking server)."""
    name = f"r{uuid.uuid4().hex[:10]}"
    update: dict[str, object] = {"model_dir": tmp_path / "models", "approve_min_shadow": 0}
    if request.param == "index":
        update["registry_uri"] = str(tmp_path / "registry")
    elif request.param == "sagemaker":
        update |= {"registry_uri": f"sagemaker://{name}", "sagemaker_bucket": "tone-registry-tests"}
    else:
        update |= {"registry_uri": f"mlflow://{name}", "mlflow_tracking_uri": request.getfixturevalue("mlflow_server")}
    return isolated.model_copy(update=update)


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole test session (start-up costs ~15 s), with Spark's Kafka connector so
    tests can run both Kafka sources."""
    from streaming.job import build_spark, kafka_connector_config
    from tone.settings import load_settings

    settings = load_settings()
    session = build_spark("local[2]", "tone-tests", extra=kafka_connector_config(settings), jars_dir=settings.jars_dir)
    yield session
    session.stop()


def fresh_topics(settings, key_prefix: str = "t"):
    """``settings`` on new, created topics (tweets with 4 partitions) and a new Redis key prefix."""
    tag = uuid.uuid4().hex[:8]
    s = settings.model_copy(
        update={
            "kafka_topic_tweets": f"tweets-{tag}",
            "kafka_topic_dlq": f"dlq-{tag}",
            "kafka_topic_scored": f"scored-{tag}",
            "redis_key_prefix": f"{key_prefix}{tag}:",
            "top_min_count": 2,
        }
    )
    topics = {s.kafka_topic_tweets: 4, s.kafka_topic_dlq: 1, s.kafka_topic_scored: 1}
    create_topics(KafkaConnection.from_settings(s), topics)
    return s


@pytest.fixture
def isolated(settings):
    """Settings with fresh topics and Redis keys, so each test starts from nothing."""
    s = fresh_topics(settings)
    yield s
    client = redis.Redis.from_url(s.redis_url)
    for key in client.scan_iter(f"{s.redis_key_prefix}*"):
        client.delete(key)
    client.close()
