"""Offset planning of the Spark Kafka source, without Spark or a broker."""

import pytest
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadMaxRows

from streaming.kafka_source import KafkaStreamReader, from_arrow, parse_starting_offsets, to_arrow
from tone.errors import DataLossError
from tone.kafka.config import KafkaConnection
from tone.kafka.readers import RecordChunk


class Planned(KafkaStreamReader):
    def __init__(self, ends, **options):
        super().__init__({"kafka.bootstrap.servers": "h:1", "subscribe": "t", **options})
        self.ends = ends

    def _end_offsets(self):
        return dict(self.ends)

    def _begin_offsets(self, partitions):
        return {p: self.begins.get(p, 0) for p in partitions}

    begins: dict = {}  # noqa: RUF012 - per-test override


def test_read_all_available():
    reader = Planned({"0": 10, "1": 5})
    assert reader.latestOffset({"0": 2, "1": 5}, ReadAllAvailable()) == {"0": 10, "1": 5}


def test_max_rows_is_shared_fairly_and_never_exceeded():
    reader = Planned({"0": 1000, "1": 10, "2": 1000})
    end = reader.latestOffset({"0": 0, "1": 0, "2": 0}, ReadMaxRows(300))
    assert sum(end.values()) == 300
    assert end["1"] == 10  # the small partition gets all it has; the others split the rest
    assert abs(end["0"] - end["2"]) <= 1


def test_new_partitions_start_at_zero_and_ranges_skip_idle_partitions():
    reader = Planned({"0": 4, "1": 3})
    end = reader.latestOffset({"0": 4}, ReadAllAvailable())
    ranges = reader.partitions({"0": 4}, end)
    assert [(r.partition, r.start, r.end) for r in ranges] == [(1, 0, 3)]


def test_options_are_case_insensitive_and_validated():
    reader = Planned({}, maxoffsetspertrigger="50", startingoffsets="latest")
    assert reader.max_rows == 50
    assert isinstance(reader.getDefaultReadLimit(), ReadMaxRows)
    with pytest.raises(ValueError, match="startingOffsets must be earliest, latest or JSON"):
        Planned({}, startingoffsets="yesterday")
    with pytest.raises(ValueError, match="subscribe=<one topic>"):
        KafkaStreamReader({"kafka.bootstrap.servers": "h:1", "subscribe": "a,b"})
    with pytest.raises(ValueError, match="kafka.bootstrap.servers"):
        KafkaConnection.from_options({})
    conn = KafkaConnection.from_options({"kafka.bootstrap.servers": "a:1,b:2", "kafka.security.protocol": "SSL"})
    assert conn.kafka_python() == {"bootstrap_servers": ["a:1", "b:2"], "security_protocol": "SSL"}


def test_emit_ranges_groups_ranges_into_balanced_tasks():
    from streaming.kafka_source import KafkaRanges

    reader = Planned({}, emit="ranges", maxtasks="2")
    planned = reader.partitions({}, {"0": 100, "1": 10, "2": 90, "3": 30})
    assert all(isinstance(p, KafkaRanges) for p in planned)
    groups = [[(r.partition, r.end) for r in p.ranges] for p in planned]
    assert sorted(groups) == [[(0, 100), (1, 10)], [(2, 90), (3, 30)]]
    rows = [row for p in planned for row in reader.read(p)]
    assert sorted(rows) == [("t", 0, 0, 100), ("t", 1, 0, 10), ("t", 2, 0, 90), ("t", 3, 0, 30)]
    # without maxTasks: one task per partition, each still a single row
    single = Planned({}, emit="ranges").partitions({}, {"0": 5, "1": 3})
    assert [list(Planned({}, emit="ranges").read(p)) for p in single] == [[("t", 0, 0, 5)], [("t", 1, 0, 3)]]
    with pytest.raises(ValueError, match="emit must be records or ranges"):
        Planned({}, emit="rows")


def test_an_unknown_kafka_client_is_refused():
    with pytest.raises(ValueError, match="kafka.client must be auto or kafka-python"):
        Planned({}, **{"kafka.client": "confluent"})


@pytest.mark.parametrize("fail_on_data_loss", ["true", "false"])
def test_a_topic_behind_the_checkpoint_fails_the_query_whatever_the_data_loss_setting(fail_on_data_loss):
    """Going on from the recreated partition's end (as failOnDataLoss=false once did) left Redis's markers above its
    new records, which then counted as counted already: silently skipped."""
    reader = Planned({"0": 10, "1": 3}, failondataloss=fail_on_data_loss)
    with pytest.raises(DataLossError, match=r"partition 1: checkpoint at offset 50, topic ends at 3.*--query NEW"):
        reader.latestOffset({"0": 5, "1": 50}, ReadMaxRows(100))


def test_record_chunk_round_trips_through_arrow():
    pending = RecordChunk("tweets", 3)
    pending.add(10, 1_700_000_000_123, b"u1", b'{"a": 1}')
    pending.add(11, 1_700_000_000_456, None, None)
    chunk = pending.take()
    assert len(pending) == 0 and len(chunk) == 2  # take() hands the records over and starts afresh
    batch = to_arrow(chunk)
    assert batch.schema.field("timestamp").type.unit == "us"
    assert from_arrow(batch) == [chunk]


def test_offsets_deleted_before_they_were_read_fail_the_plan_saying_what_was_lost():
    reader = Planned({"0": 100, "1": 100})
    reader.begins = {0: 0, 1: 60}  # retention deleted partition 1's offsets 0-59; the checkpoint is at 40
    with pytest.raises(DataLossError, match=r"partition 1: offsets 40-59.*TONE_FAIL_ON_DATA_LOSS=false"):
        reader.latestOffset({"0": 40, "1": 40}, ReadAllAvailable())
    lenient = Planned({"0": 100, "1": 100}, failondataloss="false")
    lenient.begins = {0: 0, 1: 60}
    # Planned as usual: the task that reads partition 1 skips to offset 60 and counts the 20 lost offsets.
    assert lenient.latestOffset({"0": 40, "1": 40}, ReadAllAvailable()) == {"0": 100, "1": 100}


def test_starting_offsets_take_sparks_json_form():
    assert parse_starting_offsets("earliest", "t") == {}
    assert parse_starting_offsets('{"t": {"0": 23, "1": -2, "2": -1}}', "t") == {0: 23, 1: -2, 2: -1}
    for bad in ('{"other": {"0": 1}}', '{"t": {"0": -3}}', "{", '{"t": [1]}'):
        with pytest.raises(ValueError, match="startingOffsets"):
            parse_starting_offsets(bad, "t")


def test_a_ranges_last_chunk_carries_the_readers_position_even_without_a_record():
    """Records at 10 and 12 of [10, 16): 13-15 were transaction markers or aborted records, read past all the same."""
    from streaming.kafka_source import KafkaRange
    from tone.kafka.readers import _chunks

    chunks = list(_chunks(KafkaRange("t", 0, 10, 16), iter([(10, 1, b"k", b"a"), (12, 2, b"k", b"b")])))
    assert [(c.offsets, c.end) for c in chunks] == [([10, 12], 16)]
    (empty,) = _chunks(KafkaRange("t", 1, 3, 5), iter([]))  # only an aborted record and its marker
    assert (empty.offsets, empty.end) == ([], 5)
