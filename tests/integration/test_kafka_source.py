"""The Python Data Source reading Kafka into Spark Structured Streaming: every record once, resumable."""

import uuid

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from producer.kafka_writer import TweetWriter

pytestmark = pytest.mark.integration


def _topic(settings, partitions=3):
    name = f"src-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_list)
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    admin.close()
    return name


def _produce(settings, topic, start, n):
    with TweetWriter(settings, topic=topic) as writer:
        for i in range(start, start + n):
            writer.send_raw(f"user{i % 11}".encode(), f"m{i}".encode())


def _run(spark, settings, topic, checkpoint, table, max_rows=None, client="auto"):
    reader = (
        spark.readStream.format("tone_kafka")
        .option("kafka.bootstrap.servers", settings.kafka_bootstrap_servers)
        .option("subscribe", topic)
        .option("kafka.client", client)
    )
    if max_rows:
        reader = reader.option("maxOffsetsPerTrigger", str(max_rows))
    seen: list[str] = []
    sizes: list[int] = []

    def collect(df, batch_id):
        rows = [r.value for r in df.selectExpr("CAST(value AS STRING) AS value").collect()]
        seen.extend(rows)
        sizes.append(len(rows))

    # foreachBatch (unlike the memory sink) can resume from a checkpoint, like the real job
    query = (
        reader.load()
        .writeStream.foreachBatch(collect)
        .queryName(table)
        .option("checkpointLocation", str(checkpoint))
        .start()
    )
    try:
        query.processAllAvailable()
    finally:
        query.stop()
    return seen, sizes


@pytest.mark.parametrize("client", ["auto", "kafka-python"])  # auto: librdkafka (confluent-kafka) when installed
def test_reads_every_record_once_and_resumes_from_checkpoint(spark, settings, tmp_path, client):
    topic = _topic(settings)
    _produce(settings, topic, 0, 3000)
    first, _ = _run(spark, settings, topic, tmp_path / "ckpt", "first", client=client)
    assert sorted(first) == sorted(f"m{i}" for i in range(3000))

    _produce(settings, topic, 3000, 500)
    second, _ = _run(
        spark, settings, topic, tmp_path / "ckpt", "second", client=client
    )  # same checkpoint: only the new ones
    assert sorted(second) == sorted(f"m{i}" for i in range(3000, 3500))


def test_max_offsets_per_trigger_caps_each_batch(spark, settings, tmp_path):
    topic = _topic(settings)
    _produce(settings, topic, 0, 1000)
    values, progress = _run(spark, settings, topic, tmp_path / "ckpt", "capped", max_rows=300)
    assert sorted(values) == sorted(f"m{i}" for i in range(1000))
    assert max(progress) <= 300
    assert sum(progress) == 1000
