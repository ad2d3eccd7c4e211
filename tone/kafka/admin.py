"""Topic administration: create the project's topics, delete scratch ones."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import Any

from tone.errors import ToneError
from tone.kafka.config import KafkaConnection


def admin_client(conn: KafkaConnection, timeout: float = 30.0) -> Any:
    """A kafka-python admin client; retried until ``timeout``, since a broker may take TCP before it answers."""
    from kafka.admin import KafkaAdminClient

    deadline = time.monotonic() + timeout
    while True:
        try:
            return KafkaAdminClient(**conn.kafka_python(), request_timeout_ms=5000)
        except Exception as exc:
            if time.monotonic() > deadline:
                msg = f"the broker on {conn.bootstrap} does not answer Kafka requests: {exc}"
                raise ToneError(msg) from exc
            time.sleep(0.1)


def create_topics(conn: KafkaConnection, partitions: Mapping[str, int], timeout: float = 30.0) -> list[str]:
    """Create the topics (name -> partitions) that do not exist yet; returns the ones created now."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = admin_client(conn, timeout)
    try:
        existing = set(admin.list_topics())
        created = []
        for topic, count in partitions.items():
            if topic in existing:
                continue
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(topic, num_partitions=count, replication_factor=1)])
                created.append(topic)
        return created
    finally:
        admin.close()


def delete_topics(conn: KafkaConnection, topics: Iterable[str]) -> None:
    """Delete topics; a broker that refuses is left alone (callers delete only throw-away topics)."""
    admin = admin_client(conn)
    try:
        admin.delete_topics(list(topics))
    except Exception:  # noqa: BLE001, S110 - some brokers do not delete topics; the data is throw-away either way
        pass
    finally:
        admin.close()
