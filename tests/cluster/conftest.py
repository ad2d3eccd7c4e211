"""The cluster suite (`make test-cluster`): one cluster stack on loopback per session.

3 KRaft brokers, a Redis Cluster of 3 masters with 2 replicas each, a Spark standalone master with 2 workers and moto,
each JVM's heap capped. Ports come in one block that is free, so the interleaved broker/controller ports and the
Redis Cluster bus ports (+ 10000) are free too.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import LocalStack
from tests.conftest import fresh_topics
from tone.settings import Settings, load_settings

BLOCK = 40  # kafka +0..+5, redis +10..+18 (bus +10010..), moto +20, spark +30..+33


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out to outgoing connections (Linux's default when it cannot be read)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    """Whether a server could listen on ``port`` now: a connect test misses a port held as the local end of an
    outgoing connection, and a Redis node given such a port exits (a cluster create then failed with 'Connection
    refused' once, with Spark and Kafka's clients holding hundreds of ephemeral ports)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_block(rng: random.Random) -> int:
    """A port base where every port of the block (and the Redis buses, + 10000) is free and below the kernel's
    ephemeral range, so no outgoing connection can take one between this pick and a server's bind."""
    top = min(_ephemeral_low(), 65536) - 10010 - 9 - BLOCK
    if top <= 10000:
        raise RuntimeError(f"the ephemeral port range starts at {_ephemeral_low()}: too low for a cluster port block")
    for _ in range(200):
        base = rng.randrange(10000, top, BLOCK)
        ports = [base + i for i in range(BLOCK)] + [base + 10010 + i for i in range(9)]
        if all(_bindable(p) for p in ports):
            return base
    raise RuntimeError("no free block of ports for the cluster stack")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    base = free_block(random.Random())
    s = load_settings(
        stack_dir=tmp_path_factory.mktemp("cluster-stack"),
        stack_kafka_port=base,
        stack_kafka_controller_port=base + 1,
        stack_redis_port=base + 10,
        stack_moto_port=base + 20,
        stack_spark_port=base + 30,
        stack_kafka_brokers=3,
        stack_redis_cluster=True,
        stack_spark_workers=2,
        stack_kafka_heap_mb=256,
    )
    local = LocalStack(s)
    try:
        local.up()
        yield local
    finally:
        local.down()


@pytest.fixture
def on_cluster(cluster: LocalStack) -> Settings:
    """The cluster's client settings on fresh topics (3 replicas, min ISR 2) and a fresh Redis key prefix."""
    return fresh_topics(cluster.client_settings(), "c")
