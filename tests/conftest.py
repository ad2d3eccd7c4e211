"""Shared fixtures. Integration tests get one real local stack per session (broker, Redis, moto).

There is no skip when a service is missing: the stack fixture raises, and the tests that need it error out.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import LocalStack
from tone.settings import Settings, load_settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stack_settings(state_dir: Path, **overrides: object) -> Settings:
    """Settings for a stack on free ports in ``state_dir``, with clients pointed at it."""
    kafka, redis_port, moto = free_port(), free_port(), free_port()
    return load_settings(
        stack_dir=state_dir,
        stack_kafka_port=kafka,
        stack_redis_port=redis_port,
        stack_moto_port=moto,
        kafka_bootstrap_servers=f"127.0.0.1:{kafka}",
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        aws_endpoint_url=f"http://127.0.0.1:{moto}",
        **overrides,
    )


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
def spark():
    """One local Spark session for the whole test session (start-up costs ~15 s)."""
    from streaming.job import build_spark

    session = build_spark("local[2]", "tone-tests")
    yield session
    session.stop()
