"""Topic administration through librdkafka's admin client: wait for a broker, create topics, delete scratch ones."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from tone.errors import ToneError
from tone.kafka.config import KafkaConnection


def admin_client(conn: KafkaConnection) -> Any:
    """A confluent-kafka AdminClient on the connection."""
    from confluent_kafka.admin import AdminClient

    return AdminClient(conn.librdkafka())


def wait_until_ready(admin: Any, conn: KafkaConnection, timeout: float) -> set[str]:
    """Wait until the cluster answers a metadata request (a broker takes TCP before it answers); its topics."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return set(admin.list_topics(timeout=min(5.0, max(0.5, deadline - time.monotonic()))).topics)
        except Exception as exc:
            if time.monotonic() > deadline:
                msg = f"the Kafka cluster at {conn.bootstrap} does not answer metadata requests: {exc}"
                raise ToneError(msg) from exc
            time.sleep(0.2)


def create_topics(conn: KafkaConnection, partitions: Mapping[str, int], timeout: float = 30.0) -> list[str]:
    """Create the topics (name -> partitions) that do not exist yet; returns the ones created now."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]  # exported at run time, not in stubs

    admin = admin_client(conn)
    existing = wait_until_ready(admin, conn, timeout)
    wanted = [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in partitions.items() if t not in existing]
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


def delete_topics(conn: KafkaConnection, topics: Iterable[str], timeout: float = 30.0) -> None:
    """Delete topics and wait for it; a topic that is gone already is fine (callers delete throw-away topics)."""
    from confluent_kafka import KafkaException

    names = list(topics)
    if not names:
        return
    for future in admin_client(conn).delete_topics(names, operation_timeout=timeout).values():
        try:
            future.result()
        except KafkaException:
            pass
