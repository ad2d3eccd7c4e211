"""The cluster suite (`make test-cluster`): one cluster stack on loopback per session.

3 KRaft brokers, a Redis Cluster of 3 masters with 2 replicas each, a Spark standalone master with 2 workers and moto,
each JVM's heap capped. Ports come in one block that is free, so the interleaved broker/controller ports and the
Redis Cluster bus ports (+ 10000) are free too.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from devstack.process import port_open
from devstack.stack import LocalStack
from tests.conftest import fresh_topics
from tone.settings import Settings, load_settings

BLOCK = 40  # kafka +0..+5, redis +10..+18 (bus +10010..), moto +20, spark +30..+33


def free_block(rng: random.Random) -> int:
    """A port base where every port of the block (and the Redis buses) is free."""
    for _ in range(200):
        base = rng.randrange(20000, 50000, BLOCK)
        ports = [base + i for i in range(BLOCK)] + [base + 10010 + i for i in range(9)]
        if not any(port_open(p) for p in ports):
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
