"""The real broker: topics, keyed produce across partitions, a consumer group reading everything back once."""

import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic

from producer.kafka_writer import TweetWriter
from tone.events import TweetEvent, parse_event

pytestmark = pytest.mark.integration


def test_stack_created_the_project_topics(settings):
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_list)
    try:
        assert len(consumer.partitions_for_topic(settings.kafka_topic_tweets)) == settings.kafka_partitions
        assert consumer.partitions_for_topic(settings.kafka_topic_dlq) == {0}
        assert consumer.partitions_for_topic(settings.kafka_topic_scored) == {0}
    finally:
        consumer.close()


def _consume_group(settings, topic, group, expected, produce, partitions, members=2, timeout=90.0):
    """Run ``members`` consumers in one group; once the group has split ``partitions`` between them, call
    ``produce``; run until together they have read ``expected`` records.

    Producing only after the split matters: a member that joins first owns every partition until the next one's
    join completes (slower while the broker's group coordinator is still loading), and could otherwise read all
    the records alone before the group ever split.
    """
    results: dict[int, list] = {i: [] for i in range(members)}
    assigned: dict[int, set] = {i: set() for i in range(members)}
    owned: dict[int, set] = {i: set() for i in range(members)}  # each member's current assignment
    done = threading.Event()

    def member(i: int) -> None:
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=settings.bootstrap_list,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=6000,  # the broker takes about half of this to complete a join
            heartbeat_interval_ms=2000,
        )
        try:
            deadline = time.monotonic() + timeout
            while not done.is_set() and time.monotonic() < deadline:
                for tp, records in consumer.poll(timeout_ms=200).items():
                    assigned[i].add(tp.partition)
                    results[i].extend(records)
                owned[i] = {tp.partition for tp in consumer.assignment()}
                if sum(len(r) for r in results.values()) >= expected:
                    consumer.commit()
                    # keep polling briefly: duplicates, if any, would arrive now
                    end = time.monotonic() + 1.0
                    while time.monotonic() < end:
                        for records in consumer.poll(timeout_ms=200).values():
                            results[i].extend(records)
                    done.set()
        finally:
            consumer.close()

    def split() -> bool:
        sets = list(owned.values())
        return all(sets) and sum(map(len, sets)) == len(set().union(*sets)) == partitions

    threads = [threading.Thread(target=member, args=(i,)) for i in range(members)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    while not split() and time.monotonic() < deadline:
        time.sleep(0.1)
    produce()
    for t in threads:
        t.join()
    return results, assigned


def test_consumer_group_reads_back_exactly_what_was_produced(settings):
    topic = f"group-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_list)
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    admin.close()

    start = datetime(2026, 11, 23, tzinfo=UTC)
    events = [
        TweetEvent(str(i), f"user{i % 97}", f"tweet number {i}", start + timedelta(seconds=i)) for i in range(10_000)
    ]

    def produce() -> None:
        with TweetWriter(settings, topic=topic) as writer:
            assert writer.send_all(events) == 10_000

    results, assigned = _consume_group(settings, topic, f"g-{topic}", expected=10_000, produce=produce, partitions=4)
    records = [r for member in results.values() for r in member]
    ids = Counter(r.value for r in records)
    assert len(records) == 10_000
    assert max(ids.values()) == 1  # nothing read twice
    parsed = {parse_event(r.value) for r in records}
    assert parsed == set(events)  # nothing lost, nothing altered
    # keyed by user id: every record of one user is on one partition, and all 4 partitions are used
    partitions_of_user: dict[bytes, set[int]] = {}
    for r in records:
        partitions_of_user.setdefault(r.key, set()).add(r.partition)
    assert all(len(p) == 1 for p in partitions_of_user.values())
    assert {r.partition for r in records} == {0, 1, 2, 3}
    # the group split the partitions between its two members
    assert len(assigned[0]) == len(assigned[1]) == 2  # the range assignor splits 4 partitions 2 + 2
    assert not assigned[0] & assigned[1]


def test_watermarks_are_exact(settings):
    """What lag monitors and Spark's Kafka source rely on (an earlier broker reported 1 after 14 in one batch)."""
    from confluent_kafka import Consumer, TopicPartition

    from tone.kafka.admin import create_topics
    from tone.kafka.clients import open_producer
    from tone.kafka.config import KafkaConnection
    from tone.kafka.readers import open_reader

    conn = KafkaConnection.from_settings(settings)
    small, big = f"wm-{uuid.uuid4().hex[:8]}", f"wm-{uuid.uuid4().hex[:8]}"
    create_topics(conn, {small: 1, big: 4})
    producer = open_producer(conn)
    for i in range(14):  # one batch
        producer.send(small, value=f"d{i}".encode())
    for i in range(20_000):
        producer.send(big, key=f"user{i % 333}".encode(), value=b"x")
    producer.flush()

    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "wm"})
    try:
        assert consumer.get_watermark_offsets(TopicPartition(small, 0), timeout=10) == (0, 14)
        highs = [consumer.get_watermark_offsets(TopicPartition(big, p), timeout=10)[1] for p in range(4)]
        assert sum(highs) == 20_000
    finally:
        consumer.close()
    for client in ("auto", "kafka-python"):
        reader = open_reader(conn, client)
        try:
            assert reader.end_offsets(big, reader.partitions(big)) == dict(enumerate(highs))
        finally:
            reader.close()


def test_created_topics_get_the_replication_the_cluster_allows(settings):
    from confluent_kafka.admin import ConfigResource

    from tone.errors import ToneError
    from tone.kafka.admin import Replication, admin_client, create_topics
    from tone.kafka.config import KafkaConnection

    conn = KafkaConnection.from_settings(settings)
    topic = f"rf-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ToneError, match="TONE_KAFKA_REPLICATION_FACTOR=3 needs at least 3 brokers; the cluster has 1"):
        create_topics(conn, {topic: 2}, replication=Replication(3))
    assert create_topics(conn, {topic: 2}) == [topic]  # auto: min(3, 1 broker)
    admin = admin_client(conn)
    meta = admin.list_topics(topic, timeout=10).topics[topic]
    assert {len(p.replicas) for p in meta.partitions.values()} == {1}
    (future,) = admin.describe_configs([ConfigResource("topic", topic)]).values()
    assert future.result(timeout=10)["min.insync.replicas"].value == "1"
