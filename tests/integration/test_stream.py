"""The whole stream on real parts: broker, Spark, scorer, Redis. Exactly-once per-user counts and the DLQ."""

import json
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaConsumer, TopicPartition

from producer.kafka_writer import TweetWriter
from streaming.job import LOCAL_FS_CLASS, ToneStream
from tests.helpers import REPO_ROOT
from tone.aggregates.factory import open_store
from tone.events import TweetEvent
from tone.scoring.vader import VaderScorer

pytestmark = pytest.mark.integration

TEXTS = [
    "I love this so much!",
    "This is terrible, I hate it.",
    "The meeting is at 3pm.",
    "Best day ever :)",
    "Worst service, never again",
    "Reading the paper on the train",
    "Great job team!",
    "So sad and angry",
]
INVALID = [
    b"not json",
    b'{"id": "x1"}',
    b'{"id":"x2","user_id":"u","text":"","created_at":"2026-01-01T00:00:00Z"}',
    b'{"id":"x3","user_id":"u","text":"hi","created_at":"2026-01-01T00:00:00"}',
    b"\xff\xfe\x00",
]


def events(start, n, users=13):
    t0 = datetime(2026, 11, 23, tzinfo=UTC)
    return [
        TweetEvent(f"t{i}", f"user{i % users}", TEXTS[i % len(TEXTS)], t0 + timedelta(seconds=i))
        for i in range(start, start + n)
    ]


def produce(s, evs, invalid=()):
    with TweetWriter(s) as writer:
        for i, e in enumerate(evs):
            writer.send(e)
            if i < len(invalid):
                writer.send_raw(b"bad", invalid[i])


def expected_counts(evs):
    labels = VaderScorer().predict([e.text for e in evs])
    counts: dict[str, Counter] = {}
    for e, label in zip(evs, labels, strict=True):
        counts.setdefault(e.user_id, Counter())[label] += 1
    return counts


def redis_counts(s, users):
    store = open_store(s)
    out = {}
    for u in users:
        agg = store.user(u)
        if agg:
            out[u] = Counter(agg["counts"])
    return out


def run(spark, s, checkpoint, max_per_trigger=0, stop_after=None, fused_read=True, source="python"):
    job = ToneStream(
        s,
        scorer="vader",
        checkpoint=checkpoint,
        query_name="q",
        trigger_seconds=0.5,
        max_per_trigger=max_per_trigger,
        fused_read=fused_read,
        source=source,
    )
    query = job.start(spark)
    try:
        if stop_after is None:
            query.processAllAvailable()
        else:
            while job.batches < stop_after:
                query.awaitTermination(0.5)
    finally:
        query.stop()
    return job


def read_topic(s, topic):
    consumer = KafkaConsumer(bootstrap_servers=s.bootstrap_list, consumer_timeout_ms=2000)
    consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)])
    consumer.seek_to_beginning()
    records = list(consumer)
    consumer.close()
    return records


SOURCES = ["python", "native"]


@pytest.mark.parametrize(
    ("source", "fused_read"),
    [("python", True), ("python", False), ("native", False)],
    ids=["python-tasks-read-ranges", "python-records-through-spark", "native-spark-kafka-source"],
)
def test_counts_are_exact_and_invalid_records_are_dead_lettered(spark, isolated, tmp_path, source, fused_read):
    s = isolated
    evs = events(0, 400)
    produce(s, evs, INVALID)
    job = run(spark, s, tmp_path / "ckpt", fused_read=fused_read, source=source)
    assert sum(r.records for r in job.reports) == 405
    assert redis_counts(s, {e.user_id for e in evs}) == expected_counts(evs)

    dlq = read_topic(s, s.kafka_topic_dlq)
    assert sorted(r.value for r in dlq) == sorted(INVALID)
    reasons = sorted(dict(r.headers)["reason"].decode() for r in dlq)
    assert reasons == sorted(["invalid_json", "missing_field", "empty_text", "naive_timestamp", "invalid_utf8"])

    scored = [json.loads(r.value) for r in read_topic(s, s.kafka_topic_scored)]
    assert len(scored) == 400
    assert {x["model_version"] for x in scored} == {"vader-3.3.2"}

    store = open_store(s)
    user0 = store.user("user0")
    assert user0["n"] == sum(expected_counts(evs)["user0"].values())
    assert user0["recent"][0]["id"] == max((e for e in evs if e.user_id == "user0"), key=lambda e: e.created_at).id
    top = store.top("negative", n=3)
    assert len(top) == 3
    assert [score for _, score in top] == sorted((score for _, score in top), reverse=True)
    assert top[0][1] == pytest.approx(max(store.user(u)["mean_probs"]["negative"] for u in {e.user_id for e in evs}))


@pytest.mark.parametrize("source", SOURCES)
def test_restart_from_checkpoint_loses_and_doubles_nothing(spark, isolated, tmp_path, source):
    s = isolated
    first = events(0, 600)
    produce(s, first)
    # stop mid-stream: small batches, stop after two
    partial_job = run(spark, s, tmp_path / "ckpt", max_per_trigger=100, stop_after=2, source=source)
    assert 0 < sum(r.records for r in partial_job.reports) < 600
    assert max(r.records for r in partial_job.reports) <= 100  # maxOffsetsPerTrigger caps each batch

    second = events(600, 200)
    produce(s, second)
    run(spark, s, tmp_path / "ckpt", source=source)
    assert redis_counts(s, {e.user_id for e in first + second}) == expected_counts(first + second)


@pytest.mark.parametrize("source", SOURCES)
def test_a_replayed_batch_changes_nothing(spark, isolated, tmp_path, source):
    s = isolated
    evs = events(0, 300)
    produce(s, evs)
    checkpoint = tmp_path / "ckpt"
    run(spark, s, checkpoint, source=source)
    before = redis_counts(s, {e.user_id for e in evs})
    # Forget that the last batch was committed, as after a crash between the sink and the commit:
    # Spark runs that batch again on restart, with the same offsets.
    commits = sorted((checkpoint / "commits").iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else -1)
    last = [p for p in commits if p.name.isdigit()][-1]
    last.unlink()
    shutil.rmtree(checkpoint / "commits" / f".{last.name}.crc", ignore_errors=True)
    (checkpoint / "commits" / f".{last.name}.crc").unlink(missing_ok=True)
    job = run(spark, s, checkpoint, source=source)
    assert job.batches >= 1  # the batch really ran again
    # Spark's own source hands the task the batch's records again; ours reads from just after Redis's markers.
    assert job.records == (job.totals["already"] if source == "native" else 0)
    assert job.totals["counted"] == 0
    assert all(r.applied_ranges == 0 for r in job.reports)
    assert redis_counts(s, {e.user_id for e in evs}) == before == expected_counts(evs)


def checkpoint_logs(query):
    """The running query's offset and commit logs (JVM objects)."""
    execution = query._jsq.streamingQuery()
    return execution.offsetLog(), execution.commitLog()


def checkpoint_managers(query):
    """The class names of the managers that write the running query's offset and commit logs."""
    return {log.fileManager().getClass().getSimpleName() for log in checkpoint_logs(query)}


def managers_of_a_started_query(spark, s, checkpoint):
    job = ToneStream(s, scorer="vader", checkpoint=checkpoint, query_name="q", trigger_seconds=0.5)
    query = job.start(spark)
    try:
        return checkpoint_managers(query)
    finally:
        query.stop()


def test_a_local_checkpoint_is_written_through_the_filesystem_api(spark, isolated, tmp_path):
    # Spark's default manager (FileContext) forks a readlink for each path it resolves when Hadoop's native library
    # is missing, as it is with pip's pyspark: about 100 ms of each micro-batch here (docs/benchmarks.md).
    assert managers_of_a_started_query(spark, isolated, tmp_path / "ckpt") == {"FileSystemBasedCheckpointFileManager"}


def test_the_checkpoint_files_are_written_by_a_file_system_that_forks_no_chmod(spark, isolated, tmp_path):
    # Hadoop's LocalFileSystem forks `chmod` for each file it creates and its .crc without the native library: four
    # child processes a micro-batch, 7-10 ms each here (docs/benchmarks.md). make setup fetches one that does not.
    job = ToneStream(isolated, scorer="vader", checkpoint=tmp_path / "ckpt", query_name="q", trigger_seconds=0.5)
    query = job.start(spark)
    try:
        systems = {log.fileManager().fs().getClass().getName() for log in checkpoint_logs(query)}
        query.processAllAvailable()
    finally:
        query.stop()
    assert systems == {LOCAL_FS_CLASS}
    # The same files as Hadoop's own would write: the log entry and its checksum.
    assert (tmp_path / "ckpt" / "offsets" / "0").is_file()
    assert (tmp_path / "ckpt" / "offsets" / ".0.crc").is_file()


def test_a_checkpoint_manager_the_user_chose_is_kept(spark, isolated, tmp_path):
    key = "spark.sql.streaming.checkpointFileManagerClass"
    chosen = "org.apache.spark.sql.execution.streaming.checkpointing.FileContextBasedCheckpointFileManager"
    spark.conf.set(key, chosen)
    try:
        managers = managers_of_a_started_query(spark, isolated, tmp_path / "ckpt")
    finally:
        spark.conf.unset(key)
    assert managers == {"FileContextBasedCheckpointFileManager"}


def test_batches_the_driver_plans_count_every_record_once(spark, isolated, tmp_path):
    """After the first batch the driver plans each batch's tasks from Spark's offset log (ToneStream.planned_tasks):
    the ranges follow each other with no gap or overlap, and every record counts and is written once."""
    s = isolated
    evs = events(0, 700)
    produce(s, evs, INVALID)
    first = run(spark, s, tmp_path / "ckpt", max_per_trigger=100, stop_after=4)
    assert 4 <= first.batches < 7
    assert first.planned_batches == first.batches - 1  # all but the first (its start offsets are not logged)
    rest = run(spark, s, tmp_path / "ckpt", max_per_trigger=150)  # a restarted query plans from its log at once
    assert rest.planned_batches == rest.batches >= 2
    # In each run, the records each batch read (its first and last offsets) follow each other in every
    # partition. (Across the stop they need not: a batch cut short may have counted some records, which its rerun
    # does not read again.)
    for job in (first, rest):
        ranges: dict[int, list[tuple[int, int]]] = {}
        for report in job.reports:
            for partition, start, end, _, _ in report.ranges:
                ranges.setdefault(partition, []).append((start, end))
        for spans in ranges.values():
            assert job is rest or spans[0][0] == 0
            assert all(a[1] + 1 == b[0] for a, b in zip(spans, spans[1:], strict=False)), spans
    assert redis_counts(s, {e.user_id for e in evs}) == expected_counts(evs)
    assert len(read_topic(s, s.kafka_topic_scored)) == 700
    assert len(read_topic(s, s.kafka_topic_dlq)) == len(INVALID)


def test_the_python_workers_talk_to_spark_over_unix_sockets(spark):
    # Over TCP loopback each hand-over between Spark and a Python worker waited ~40 ms for a delayed ACK
    # (docs/benchmarks.md): a trivial two-task Python job took 91 ms, 45 ms over Unix sockets.
    assert spark.conf.get("spark.python.unix.domain.socket.enabled") == "true"


def test_a_mixed_feed_is_counted_by_language_and_only_the_languages_a_model_reads_are_scored(spark, isolated, tmp_path):
    """examples/multilingual.jsonl through the default routes (en=default): English users on real tweets, users who
    write only in one of 12 other languages (detected), a user who declares every tweet's language, one who mixes,
    very short declared English and emoji-only tweets."""
    s = isolated
    assert s.routes == "en=default"
    lines = (REPO_ROOT / "examples" / "multilingual.jsonl").read_text(encoding="utf-8").splitlines()
    tweets = [json.loads(line) for line in lines]
    with TweetWriter(s) as writer:
        for line, tweet in zip(lines, tweets, strict=True):
            writer.send_raw(tweet["user_id"].encode(), line.encode())
    run(spark, s, tmp_path / "ckpt")

    store = open_store(s)
    users = {t["user_id"] for t in tweets}
    views = {u: store.user(u) for u in users}
    assert sum(v["n"] for v in views.values()) == len(tweets)  # every tweet counted once
    scored = {x["id"]: x for x in (json.loads(r.value) for r in read_topic(s, s.kafka_topic_scored))}
    assert len(scored) == len(tweets)
    other = [t for t in tweets if t["user_id"].removeprefix("demo_") in OTHER_LANGUAGES]
    right = {lang: 0 for lang in OTHER_LANGUAGES}
    for t in other:
        right[t["user_id"].removeprefix("demo_")] += scored[t["id"]]["lang"] == t["user_id"].removeprefix("demo_")
    assert sum(right.values()) / len(other) >= 0.95
    assert min(right.values()) / 8 >= 0.85  # 8 tweets of each language's user
    assert sum(scored[t["id"]]["label"] is not None for t in other) / len(other) <= 0.05
    english = views["demo_en"]
    assert english["scored"] / english["n"] >= 0.97
    assert views["demo_declares"]["languages"] == {lang: 2 for lang in OTHER_LANGUAGES}  # declared: honoured exactly
    assert views["demo_declares"]["scored"] == 0
    short = [scored[t["id"]] for t in tweets if t["text"] in ("ok", "lol 😂")]
    assert [(x["lang"], x["lang_source"], x["label"] is not None) for x in short] == [("en", "declared", True)] * 2
    assert views["demo_emoji"]["languages"] == {"und": 2} and views["demo_emoji"]["scored"] == 0
    mixes = views["demo_mixes"]
    assert (mixes["n"], mixes["scored"], sum(mixes["counts"].values())) == (4, 2, 2)
    for user, view in views.items():  # no unscored tweet in any tone figure
        assert sum(view["counts"].values()) == view["scored"], user
        assert store.hourly(user, "2026112310").keys() <= {"negative", "neutral", "positive"}


OTHER_LANGUAGES = ("es", "pt", "fr", "de", "it", "nl", "ru", "tr", "id", "ja", "ko", "zh")


def test_a_record_at_the_brokers_size_limit_is_dead_lettered_and_the_stream_goes_on(spark, isolated, tmp_path):
    """Measured before: its dead letter (the original bytes plus headers) was refused (MSG_SIZE_TOO_LARGE), the
    range's transaction failed 76 times, the query stopped, and everything behind it in its partition waited."""
    from confluent_kafka import Producer

    s = isolated
    big = b'{"id": "big", "user_id": "u", "text": "' + b"x" * 1_039_900 + b'"}'
    producer = Producer({"bootstrap.servers": s.kafka_bootstrap_servers, "message.max.bytes": 1_048_576})
    producer.produce(s.kafka_topic_tweets, key=b"user0", value=big, partition=0)
    assert producer.flush(30) == 0  # the broker took it: at its own limit (1,048,588 a batch by default)
    evs = events(0, 40)
    produce(s, evs)
    run(spark, s, tmp_path / "ckpt")
    (letter,) = read_topic(s, s.kafka_topic_dlq)
    headers = {k: v for k, v in letter.headers}
    assert headers["reason"] == b"oversized_message" and int(headers["truncated"]) == len(big) + len(b"user0")
    assert big.startswith(letter.value) and len(letter.value) < 524_288
    assert redis_counts(s, {e.user_id for e in evs}) == expected_counts(evs)
