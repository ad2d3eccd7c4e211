"""What a real deployment brings, on the real stack: a transactional upstream, a lost checkpoint, retention.

Each test fails on the code before per-record offsets: the python source hung on a transaction marker at a range's
end and the native one counted aborted transactions; a lost checkpoint counted none of the new tweets; deleted
offsets stalled the reader instead of failing with what was lost.
"""

import shutil
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from streaming.job import checkpoint_has_offsets
from tests.integration.test_stream import events, expected_counts, produce, read_topic, redis_counts, run
from tone.aggregates.factory import open_store

pytestmark = pytest.mark.integration

SOURCES = ["python", "native"]


def transactional_produce(s, batches):
    """(events, commit?) per transaction, through one transactional producer, as Kafka Streams or Flink write."""
    producer = Producer(
        {"bootstrap.servers": s.kafka_bootstrap_servers, "transactional.id": f"up-{s.kafka_topic_tweets}"}
    )
    producer.init_transactions(30)
    for evs, commit in batches:
        producer.begin_transaction()
        for e in evs:
            producer.produce(s.kafka_topic_tweets, key=e.user_id.encode(), value=e.to_json())
        producer.flush(30)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)


@pytest.mark.parametrize("source", SOURCES)
def test_a_transactional_upstream_counts_committed_tweets_only_and_never_hangs(spark, isolated, tmp_path, source):
    s = isolated
    committed1, aborted, committed2 = events(0, 120), events(120, 80), events(200, 100)
    transactional_produce(s, [(committed1, True), (aborted, False), (committed2, True)])
    job = run(spark, s, tmp_path / "ckpt", source=source)
    assert job.totals["counted"] == 220
    users = {e.user_id for e in committed1 + aborted + committed2}
    assert redis_counts(s, users) == expected_counts(committed1 + committed2)
    # More committed tweets after the markers: the next batch starts past them.
    committed3 = events(300, 40)
    transactional_produce(s, [(committed3, True)])
    run(spark, s, tmp_path / "ckpt", source=source)
    assert redis_counts(s, users) == expected_counts(committed1 + committed2 + committed3)


@pytest.mark.parametrize("source", SOURCES)
def test_a_lost_checkpoint_resumes_after_what_redis_counted(spark, isolated, tmp_path, source, caplog):
    s = isolated
    first = events(0, 300)
    produce(s, first)
    checkpoint = tmp_path / "ckpt"
    run(spark, s, checkpoint, source=source)
    assert checkpoint_has_offsets(checkpoint)
    shutil.rmtree(checkpoint)  # a cache directory cleaned, a new machine, a redeploy without the volume
    second = events(300, 200)
    produce(s, second)
    job = run(spark, s, checkpoint, source=source)
    assert "resuming after the offsets Redis counted" in caplog.text
    assert (job.totals["counted"], job.totals["already"], job.records) == (200, 0, 200)  # nothing re-read
    assert redis_counts(s, {e.user_id for e in first + second}) == expected_counts(first + second)


def settled_markers(s, timeout=60.0):
    """Redis's markers once they stop moving: a task of a stopped query can still finish its Redis apply after
    query.stop() returns (seen: a marker moved after it was read here, and 30 "lost" offsets had been counted)."""
    store = open_store(s)
    deadline = time.monotonic() + timeout
    before = None
    while True:
        now = {p: store.last_offset("q", s.kafka_topic_tweets, p) for p in range(4)}
        if now == before or time.monotonic() > deadline:
            return now
        before = now
        time.sleep(3)


def delete_records(s, before):
    """Delete each partition's records below ``before[p]``, as retention does."""
    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap_servers})
    futures = admin.delete_records([TopicPartition(s.kafka_topic_tweets, p, o) for p, o in before.items()])
    for f in futures.values():
        f.result(30)


@pytest.mark.parametrize("fail", [True, False])
def test_offsets_deleted_before_they_were_read(spark, isolated, tmp_path, fail):
    s = isolated.model_copy(update={"fail_on_data_loss": fail})
    evs = events(0, 400)
    produce(s, evs)
    on_topic = {(r.partition, r.offset): r.value for r in read_topic(s, s.kafka_topic_tweets)}
    checkpoint = tmp_path / "ckpt"
    run(spark, s, checkpoint, max_per_trigger=40, stop_after=1)  # 40 tweets counted, 360 waiting
    counted = settled_markers(s)
    ends = Counter(p for p, _ in on_topic)
    before = {p: min(ends[p], (counted[p] or -1) + 1 + 30) for p in range(4)}  # 30 unread offsets per partition
    delete_records(s, before)
    if fail:
        with pytest.raises(Exception, match=r"deleted \(retention\) before the stream read them") as err:
            run(spark, s, checkpoint)
        assert "TONE_FAIL_ON_DATA_LOSS=false" in str(err.value)
        return
    job = run(spark, s, checkpoint)
    lost = sum(before[p] - ((counted[p] or -1) + 1) for p in range(4))
    assert job.totals["lost"] == lost == 120
    kept = {
        e.id
        for (p, o), value in on_topic.items()
        for e in evs
        if e.to_json() == value and (o <= (counted[p] if counted[p] is not None else -1) or o >= before[p])
    }
    survivors = [e for e in evs if e.id in kept]
    assert redis_counts(s, {e.user_id for e in evs}) == expected_counts(survivors)


@pytest.mark.parametrize("checkpoint_kept", [True, False])
def test_a_recreated_topic_stops_the_query_whatever_the_data_loss_setting(spark, isolated, tmp_path, checkpoint_kept):
    """Its new records sit at offsets Redis counted already: going on from the new end would skip them silently."""
    from tone.kafka.admin import create_topics, delete_topics
    from tone.kafka.config import KafkaConnection

    s = isolated.model_copy(update={"fail_on_data_loss": False})
    produce(s, events(0, 200))
    checkpoint = tmp_path / "ckpt"
    run(spark, s, checkpoint)
    conn = KafkaConnection.from_settings(s)
    delete_topics(conn, [s.kafka_topic_tweets])
    create_topics(conn, {s.kafka_topic_tweets: 4})
    produce(s, events(1000, 40))  # offsets 0-9 of each partition: below the markers
    if not checkpoint_kept:
        shutil.rmtree(checkpoint)
    with pytest.raises(Exception, match="went back behind what this query has read or counted") as err:
        run(spark, s, checkpoint)
    assert "tone stream --query NEW" in str(err.value)


def test_nothing_is_left_to_count_behind_a_transactional_upstream(spark, isolated, tmp_path):
    """The marker and the group's committed offset reach the partition's end, past the last commit marker: the lag
    reads 0 when every committed record was counted (it stayed 1 short, for ever)."""
    from tone.kafka.config import KafkaConnection
    from tone.kafka.readers import open_reader

    s = isolated
    transactional_produce(s, [(events(0, 60), True), (events(60, 20), False)])  # ends in an abort and its marker
    run(spark, s, tmp_path / "ckpt")
    reader = open_reader(KafkaConnection.from_settings(s))
    try:
        partitions = reader.partitions(s.kafka_topic_tweets)
        ends = reader.end_offsets(s.kafka_topic_tweets, partitions)
    finally:
        reader.close()
    store = open_store(s)
    markers = {p: store.last_offset("q", s.kafka_topic_tweets, p) for p in partitions}
    assert {p: ends[p] - (m + 1) for p, m in markers.items()} == dict.fromkeys(partitions, 0)  # lag per partition
    consumer = Consumer({"bootstrap.servers": s.kafka_bootstrap_servers, "group.id": f"{s.kafka_group_prefix}q"})
    try:
        committed = consumer.committed([TopicPartition(s.kafka_topic_tweets, p) for p in partitions], 30)
    finally:
        consumer.close()
    assert {c.partition: c.offset for c in committed} == ends
