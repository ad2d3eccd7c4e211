"""Exactly-once outputs on the real broker (tone.kafka.transactions): one transaction per input range with its
offsets, a second holder of the transactional id fences the first, and read_committed readers see each output once."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import fresh_topics
from tone.kafka.config import KafkaConnection
from tone.kafka.transactions import KafkaOutputs, Output, RangeOutputs

pytestmark = pytest.mark.integration


def read(s, topic: str, isolation: str) -> list[bytes]:
    """Every value of ``topic`` partition 0, as a reader with ``isolation`` sees it."""
    from confluent_kafka import Consumer, TopicPartition

    conn = KafkaConnection.from_settings(s)
    consumer = Consumer(conn.librdkafka() | {"group.id": uuid.uuid4().hex, "isolation.level": isolation})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, 0)])
        out: list[bytes] = []
        seen = -1
        while seen < high - 1:
            msgs = consumer.consume(500, timeout=2.0)
            if not msgs:
                break  # past the last stable offset (read_committed) or the end
            for m in msgs:
                if m.error() is None:
                    out.append(m.value())
                    seen = m.offset()
        return out
    finally:
        consumer.close()


def outputs_of(s, offsets: range) -> list[Output]:
    return [Output(o, s.kafka_topic_scored, b"k", f"v{o}".encode()) for o in offsets]


def group_offset(writer: KafkaOutputs, s) -> int:
    return writer.committed(s.kafka_topic_tweets, 0)


def test_a_range_is_written_once_whatever_the_attempts_and_a_second_holder_fences_the_first(settings):
    s = fresh_topics(settings)
    conn = KafkaConnection.from_settings(s)
    group = f"{s.kafka_group_prefix}{uuid.uuid4().hex[:6]}"
    first = KafkaOutputs(conn, group, "q1")
    second = KafkaOutputs(conn, group, "q1")  # another worker process: the same query, the same transactional ids
    try:
        assert first.write(s.kafka_topic_tweets, 0, 9, outputs_of(s, range(10))) == 10
        assert group_offset(first, s) == 10
        # A retried attempt of the same range: nothing more is written.
        assert first.write(s.kafka_topic_tweets, 0, 9, outputs_of(s, range(10))) == 0
        # The second holder takes the id (fencing the first) and writes a range that overlaps: only 10-19.
        assert second.write(s.kafka_topic_tweets, 0, 19, outputs_of(s, range(5, 20))) == 10
        # The first, fenced, replaces its producer, sees the group at 20 and writes only what is above it.
        assert first.write(s.kafka_topic_tweets, 0, 24, outputs_of(s, range(15, 25))) == 5
        assert first.fenced == 1
    finally:
        first.close()
        second.close()
    committed = read(s, s.kafka_topic_scored, "read_committed")
    assert sorted(committed) == sorted(f"v{o}".encode() for o in range(25))


def test_a_transaction_left_open_by_a_killed_task_is_aborted_by_the_next_holder(settings):
    from confluent_kafka import Producer

    from tone.kafka.transactions import transactional_id

    s = fresh_topics(settings)
    conn = KafkaConnection.from_settings(s)
    group = f"{s.kafka_group_prefix}{uuid.uuid4().hex[:6]}"
    # A task that began a transaction and sent, then died before committing (its producer never closed).
    tid = transactional_id("tone-out.", "q2", s.kafka_topic_tweets, 0)
    zombie = Producer(conn.librdkafka() | {"transactional.id": tid, "transaction.timeout.ms": 60_000})
    zombie.init_transactions(30)
    zombie.begin_transaction()
    for o in range(5):
        zombie.produce(s.kafka_topic_scored, key=b"k", value=f"v{o}".encode())
    zombie.flush(30)
    assert read(s, s.kafka_topic_scored, "read_committed") == []  # the open transaction holds back readers
    retry = KafkaOutputs(conn, group, "q2")
    try:
        assert retry.write(s.kafka_topic_tweets, 0, 4, outputs_of(s, range(5))) == 5
    finally:
        retry.close()
    # The retry's init_transactions aborted the zombie's transaction at once (not after its 60 s timeout).
    assert sorted(read(s, s.kafka_topic_scored, "read_committed")) == [f"v{o}".encode() for o in range(5)]
    assert len(read(s, s.kafka_topic_scored, "read_uncommitted")) == 10  # the aborted copies stay in the log


def test_ranges_that_move_between_processes_are_written_once_without_meeting_a_fenced_producer(settings):
    """Spark hands a partition's ranges to its workers by turns: each worker takes the id before it writes
    (``prepare``), so no write finds its producer fenced, and every output is committed once."""
    s = fresh_topics(settings)
    conn = KafkaConnection.from_settings(s)
    group = f"{s.kafka_group_prefix}{uuid.uuid4().hex[:6]}"
    workers = [KafkaOutputs(conn, group, "q3"), KafkaOutputs(conn, group, "q3")]
    try:
        for n in range(6):  # ranges of 10 offsets, alternating between the two workers
            worker = workers[n % 2]
            worker.prepare([(s.kafka_topic_tweets, 0)])
            assert worker.write(s.kafka_topic_tweets, 0, 10 * n + 9, outputs_of(s, range(10 * n, 10 * n + 10))) == 10
        assert [w.fenced for w in workers] == [0, 0]
        # Without prepare each worker's kept producer was fenced by the other's in the meantime: replaced on write.
        for n in range(6, 9):
            workers[n % 2].write(s.kafka_topic_tweets, 0, 10 * n + 9, outputs_of(s, range(10 * n, 10 * n + 10)))
        assert [w.fenced for w in workers] == [2, 1]
    finally:
        for w in workers:
            w.close()
    assert sorted(read(s, s.kafka_topic_scored, "read_committed")) == sorted(f"v{o}".encode() for o in range(90))


def test_a_tasks_ranges_are_committed_at_the_same_time_each_once(settings):
    """write_many runs each range's transaction in its own thread: both are open at once (the barrier below breaks
    if they ran one after the other), and each range's outputs are committed once."""
    import threading

    s = fresh_topics(settings)
    conn = KafkaConnection.from_settings(s)
    group = f"{s.kafka_group_prefix}{uuid.uuid4().hex[:6]}"
    both_open = threading.Barrier(2, timeout=20)

    class Meeting(KafkaOutputs):
        def _produce(self, producer, o):
            if o.source_offset in (0, 100):  # each range's first output, inside its transaction
                both_open.wait()
            super()._produce(producer, o)

    writer = Meeting(conn, group, "q4")
    try:
        ranges = [
            RangeOutputs(s.kafka_topic_tweets, 0, 9, outputs_of(s, range(10))),
            RangeOutputs(s.kafka_topic_tweets, 1, 109, outputs_of(s, range(100, 110))),
        ]
        assert writer.write_many(ranges) == [10, 10]
        assert writer.write_many(ranges) == [0, 0]  # a retried task: both ranges are written already
        assert writer.committed(s.kafka_topic_tweets, 0) == 10
        assert writer.committed(s.kafka_topic_tweets, 1) == 110
    finally:
        writer.close()
    expected = [f"v{o}".encode() for o in [*range(10), *range(100, 110)]]
    assert sorted(read(s, s.kafka_topic_scored, "read_committed")) == sorted(expected)
