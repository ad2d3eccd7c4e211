"""The driver plans a batch's tasks from Spark's offset log: the same ranges the source plans, or None."""

import json

import pytest

from streaming.job import ToneStream, batch_ranges, logged_offsets
from tone.settings import load_settings

# What Spark 4.2 writes to <checkpoint>/offsets/<batch id> for a query with this project's source (metadata cut).
METADATA = '{"batchWatermarkMs":0,"batchTimestampMs":1796203048771,"conf":{"spark.sql.shuffle.partitions":"4"}}'


def log_batch(checkpoint, batch_id, offsets, *, version="v1", sources=None):
    directory = checkpoint / "offsets"
    directory.mkdir(parents=True, exist_ok=True)
    lines = [version, METADATA, *(sources if sources is not None else [json.dumps(offsets)])]
    (directory / str(batch_id)).write_text("\n".join(lines), encoding="utf-8")


def spans(ranges):
    return [(r.topic, r.partition, r.start, r.end) for r in ranges]


def test_a_batch_runs_from_the_previous_batchs_logged_end_to_its_own(tmp_path):
    log_batch(tmp_path, 6, {"0": 3472, "1": 3765, "2": 3474, "3": 3766})
    log_batch(tmp_path, 7, {"0": 3500, "1": 3765, "2": 3480, "3": 3800, "4": 12})
    assert logged_offsets(tmp_path, 7) == {"0": 3500, "1": 3765, "2": 3480, "3": 3800, "4": 12}
    # Partition 1 has nothing new (no range); partition 4 is new since batch 6 (from offset 0, as the source does).
    assert spans(batch_ranges(tmp_path, 7, "tweets")) == [
        ("tweets", 0, 3472, 3500),
        ("tweets", 2, 3474, 3480),
        ("tweets", 3, 3766, 3800),
        ("tweets", 4, 0, 12),
    ]


def test_the_log_that_cannot_place_a_batch_says_none(tmp_path):
    log_batch(tmp_path, 0, {"0": 10})
    # The first batch starts at the source's initial offsets, which Spark does not log.
    assert batch_ranges(tmp_path, 0, "tweets") is None
    # The previous entry purged, or this one not written.
    assert batch_ranges(tmp_path, 2, "tweets") is None
    log_batch(tmp_path, 3, {"0": 20})
    assert batch_ranges(tmp_path, 3, "tweets") is None


@pytest.mark.parametrize(
    ("version", "sources"),
    [
        ("v2", None),  # a format this code does not know
        ("v1", ['{"0": 5}', '{"0": 7}']),  # a query of two sources
        ("v1", ["-"]),  # a source with no offset
        ("v1", ["not json"]),
        ("v1", ['["0", 5]']),
        ("v1", ['{"0": -1}']),
        ("v1", ['{"0": true}']),
        ("v1", ['{"0": "5"}']),
    ],
)
def test_an_entry_in_another_shape_is_not_guessed_at(tmp_path, version, sources):
    log_batch(tmp_path, 0, {"0": 1})
    log_batch(tmp_path, 1, {"0": 5}, version=version, sources=sources)
    assert logged_offsets(tmp_path, 1) is None
    assert batch_ranges(tmp_path, 1, "tweets") is None


def stream(tmp_path, **options):
    return ToneStream(load_settings(), scorer="vader", checkpoint=tmp_path, **options)


def test_the_tasks_are_grouped_as_the_source_groups_them(tmp_path):
    log_batch(tmp_path, 0, {"0": 0, "1": 0, "2": 0, "3": 0})
    log_batch(tmp_path, 1, {"0": 100, "1": 10, "2": 90, "3": 0})
    job = stream(tmp_path, max_tasks=2)
    topic = job.settings.kafka_topic_tweets
    assert job.planned_tasks(1) == [[(topic, 0, 0, 100)], [(topic, 1, 0, 10), (topic, 2, 0, 90)]]
    one_per_partition = stream(tmp_path, max_tasks=0)
    assert one_per_partition.planned_tasks(1) == [[(topic, 0, 0, 100)], [(topic, 1, 0, 10)], [(topic, 2, 0, 90)]]
    assert job.planned_tasks(0) is None  # the first batch goes through the source's rows


def test_streams_whose_tasks_get_their_records_from_spark_are_not_planned(tmp_path):
    log_batch(tmp_path, 0, {"0": 0})
    log_batch(tmp_path, 1, {"0": 100})
    assert stream(tmp_path, source="native").planned_tasks(1) is None
    assert stream(tmp_path, fused_read=False).planned_tasks(1) is None
    assert stream(tmp_path, max_tasks=2).planned_tasks(1) is not None
