"""Topic administration through librdkafka's admin client: wait for a broker, create topics, delete scratch ones."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tone.errors import ToneError
from tone.kafka.config import KafkaConnection

log = logging.getLogger(__name__)


def admin_client(conn: KafkaConnection) -> Any:
    """A confluent-kafka AdminClient on the connection."""
    from confluent_kafka.admin import AdminClient

    return AdminClient(conn.librdkafka())


def wait_until_ready(admin: Any, conn: KafkaConnection, timeout: float) -> Any:
    """Wait until the cluster answers a metadata request (a broker takes TCP before it answers); its metadata."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return admin.list_topics(timeout=min(5.0, max(0.5, deadline - time.monotonic())))
        except Exception as exc:
            if time.monotonic() > deadline:
                msg = f"the Kafka cluster at {conn.bootstrap} does not answer metadata requests: {exc}"
                raise ToneError(msg) from exc
            time.sleep(0.2)


@dataclass(frozen=True)
class Replication:
    """How many replicas a created topic gets, and its ``min.insync.replicas`` (0: chosen from the cluster)."""

    factor: int = 0
    min_insync: int = 0

    def resolve(self, brokers: int) -> tuple[int, int]:
        """(replication factor, min.insync.replicas) for a cluster of ``brokers``; ToneError if impossible."""
        factor = self.factor or min(3, max(1, brokers))
        if factor > brokers:
            msg = (
                f"TONE_KAFKA_REPLICATION_FACTOR={factor} needs at least {factor} brokers; the cluster has {brokers}. "
                "Set it to at most the broker count, or 0 for min(3, brokers)"
            )
            raise ToneError(msg)
        min_insync = self.min_insync or max(1, factor - 1)
        if min_insync > factor:
            msg = (
                f"TONE_KAFKA_MIN_INSYNC_REPLICAS={min_insync} exceeds the replication factor {factor}: no write "
                "could ever be acknowledged. Set it to at most the factor, or 0 for factor - 1"
            )
            raise ToneError(msg)
        return factor, min_insync


def create_topics(
    conn: KafkaConnection,
    partitions: Mapping[str, int],
    timeout: float = 30.0,
    replication: Replication | None = None,
) -> list[str]:
    """Create the topics (name -> partitions) that do not exist yet; returns the ones created now.

    New topics get the replication factor and ``min.insync.replicas`` of ``replication`` (by default
    min(3, brokers) and factor - 1); topics that exist are checked, never changed: one with fewer replicas than that
    is logged as under-replicated, with what to do.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]  # exported at run time, not in stubs

    admin = admin_client(conn)
    metadata = wait_until_ready(admin, conn, timeout)
    factor, min_insync = (replication or Replication()).resolve(len(metadata.brokers))
    existing = metadata.topics
    for topic in partitions:
        if topic in existing and (have := _replicas(existing[topic])) < factor:
            log.warning(
                "topic %r has %d replica(s), fewer than the %d this cluster of %d brokers should keep: a broker's loss "
                "can lose or stall it. Reassign its partitions (kafka-reassign-partitions) to add replicas",
                topic,
                have,
                factor,
                len(metadata.brokers),
            )
    config = {"min.insync.replicas": str(min_insync)}
    wanted = [
        NewTopic(t, num_partitions=n, replication_factor=factor, config=config)
        for t, n in partitions.items()
        if t not in existing
    ]
    created = []
    for topic, future in (admin.create_topics(wanted, operation_timeout=timeout) if wanted else {}).items():
        try:
            future.result()
            created.append(topic)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                msg = f"could not create topic {topic!r} on {conn.bootstrap}: {exc.args[0].str()}"
                raise ToneError(msg) from None
    return created


def _replicas(topic: Any) -> int:
    """The smallest replica count among a topic's partitions (metadata)."""
    return min((len(p.replicas) for p in topic.partitions.values()), default=0)


def delete_topics(conn: KafkaConnection, topics: Iterable[str], timeout: float = 30.0) -> None:
    """Delete topics and wait for it; a topic that is gone already is fine (callers delete throw-away topics).

    ToneError when the cluster has not answered within ``timeout`` seconds (plus librdkafka's request time).
    """
    import concurrent.futures

    from confluent_kafka import KafkaException

    names = list(topics)
    if not names:
        return
    # The client must outlive its futures: librdkafka resolves them from the client's own thread, and a client that
    # is garbage collected first leaves them pending forever (confluent-kafka-python #1298; a replay bench hung here).
    admin = admin_client(conn)
    futures = admin.delete_topics(names, operation_timeout=timeout)
    limit = timeout + 30.0  # librdkafka's own request time on top of the broker's operation timeout
    deadline = time.monotonic() + limit
    for topic, future in futures.items():
        try:
            future.result(timeout=max(0.0, deadline - time.monotonic()))
        except KafkaException:
            pass
        except concurrent.futures.TimeoutError:
            msg = f"deleting topic {topic!r} on {conn.bootstrap}: no answer within {limit:.0f} s"
            raise ToneError(msg) from None
