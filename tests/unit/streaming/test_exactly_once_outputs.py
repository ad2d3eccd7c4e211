"""TONE_OUTPUT_GUARANTEE=exactly_once in the per-record logic, on in-memory sinks: each range's outputs go in one
transaction with its offsets, only above the group's offset, before anything is counted."""

import dataclasses
import json
import random

import pytest

from streaming.pipeline import chunks_of, run_task
from tests.unit.streaming.test_pipeline import CONFIG, KAFKA_MS, ListProducer, records, tweet
from tone.aggregates.memory_store import MemoryToneStore
from tone.aggregates.store import StoreConfig
from tone.kafka.transactions import MemoryOutputs, TransactionError
from tone.scoring.vader import VaderScorer

EXACTLY = dataclasses.replace(CONFIG, output_guarantee="exactly_once")


def run(values, start, end_records, outputs, store, producer=None):
    """One attempt over offsets ``start``..: a range of partition 0."""
    chunk = list(chunks_of(records(values[start:end_records], 0, start)))
    return run_task(
        EXACTLY,
        [chunk],
        lambda _route: VaderScorer(),
        lambda: producer or ListProducer(),
        lambda: store,
        clock=lambda: KAFKA_MS / 1000 + 100,
        outputs=lambda: outputs,
    )


def values(n):
    rng = random.Random(n)
    return [tweet(i, f"u{i % 7}") if rng.random() > 0.2 else b"bad %d" % i for i in range(n)]


def test_outputs_go_in_the_transaction_and_the_producer_is_not_used():
    outputs, store, producer = MemoryOutputs(), MemoryToneStore(StoreConfig(top_min_count=1)), ListProducer()
    vals = values(30)
    (stats,) = run(vals, 0, 30, outputs, store, producer)
    assert producer.sent == []
    assert stats.sent == 30
    assert outputs.committed == {("tweets", 0): 30}
    written = {(o.topic, o.source_offset) for o in outputs.written}
    assert {offset for topic, offset in written if topic == "dlq"} == {
        i for i, v in enumerate(vals) if v.startswith(b"bad")
    }
    assert len(written) == 30
    scored = [json.loads(o.value) for o in outputs.written if o.topic == "scored"]
    assert [s["id"] for s in scored] == [f"t{i}" for i, v in enumerate(vals) if not v.startswith(b"bad")]


def test_the_transactional_ids_are_taken_before_the_scoring_starts():
    """The id of each range's partition is taken while the task scores (KafkaOutputs.prepare), not after."""
    outputs, store = MemoryOutputs(), MemoryToneStore(StoreConfig(top_min_count=1))
    prepared_when_scoring = []

    def scorer(_route):
        prepared_when_scoring.append(list(outputs.prepared or []))
        return VaderScorer()

    chunks = [list(chunks_of(records(values(20), p, 0))) for p in (0, 3)]
    run_task(EXACTLY, chunks, scorer, ListProducer, lambda: store, outputs=lambda: outputs)
    assert prepared_when_scoring == [[("tweets", 0), ("tweets", 3)]]
    assert outputs.committed == {("tweets", 0): 20, ("tweets", 3): 20}


def test_a_task_killed_before_its_commit_counts_nothing_and_its_retry_writes_everything_once():
    outputs, store = MemoryOutputs(fail_before_commit=True), MemoryToneStore(StoreConfig(top_min_count=1))
    vals = values(40)
    with pytest.raises(TransactionError):
        run(vals, 0, 40, outputs, store)
    assert store.last_offset("q", "tweets", 0) is None  # Redis is applied only after the commit
    outputs.fail_before_commit = False
    run(vals, 0, 40, outputs, store)
    assert sorted(o.source_offset for o in outputs.written) == list(range(40))


def test_a_retry_after_the_commit_but_before_the_count_writes_nothing_and_counts_everything():
    outputs = MemoryOutputs()
    vals = values(40)
    # The first attempt committed its transaction, then died before Redis: only the outputs are there.
    run(vals, 0, 40, outputs, MemoryToneStore(StoreConfig(top_min_count=1)))
    store = MemoryToneStore(StoreConfig(top_min_count=1))
    (stats,) = run(vals, 0, 40, outputs, store)
    assert stats.sent == 0
    assert len(outputs.written) == 40
    assert stats.counted == sum(not v.startswith(b"bad") for v in vals)


@pytest.mark.parametrize("seed", range(10))
def test_ranges_re_planned_over_written_outputs_write_each_record_once(seed):
    """Batches of other boundaries over the same offsets (a lost checkpoint, a bigger trigger): each record's
    outputs once, whatever was committed before."""
    rng = random.Random(seed)
    vals = values(200)
    outputs, store = MemoryOutputs(), MemoryToneStore(StoreConfig(top_min_count=1))
    pos = 0
    while pos < 200:
        end = min(200, pos + rng.randint(1, 60))
        outputs.fail_before_commit = rng.random() < 0.2
        try:
            run(vals, pos, end, outputs, store)
        except TransactionError:
            pos = rng.randint(max(0, pos - 50), pos)  # re-planned from an earlier offset
            continue
        pos = end if rng.random() > 0.3 else rng.randint(max(0, end - 50), end)
    outputs.fail_before_commit = False
    assert sorted(o.source_offset for o in outputs.written) == list(range(200))
    assert sum(store.user(f"u{i}")["n"] for i in range(7)) == sum(not v.startswith(b"bad") for v in vals)


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_task_that_dies_between_its_outputs_and_its_count_doubles_outputs_only_at_least_once(guarantee):
    """The defect the issue measured (6,053 duplicates in tweets.scored after one kill -9): the outputs of an
    attempt that died before its count are sent again by the retry, unless they were committed with the offsets."""
    config = dataclasses.replace(CONFIG, output_guarantee=guarantee)
    outputs, producer = MemoryOutputs(), ListProducer()
    store = MemoryToneStore(StoreConfig(top_min_count=1))
    vals = values(50)

    def attempt():
        chunk = list(chunks_of(records(vals, 0, 0)))
        run_task(
            config, [chunk], lambda _route: VaderScorer(), lambda: producer, lambda: store, outputs=lambda: outputs
        )

    store.fail_with = ConnectionError("killed after the outputs, before the count")
    with pytest.raises(ConnectionError):
        attempt()
    store.fail_with = None
    attempt()
    offsets = [o.source_offset for o in outputs.written or []]
    sent = len(producer.sent) if guarantee == "at_least_once" else len(offsets)
    assert sent == (100 if guarantee == "at_least_once" else 50)


def test_a_range_that_ends_in_transaction_markers_is_counted_and_committed_to_its_end():
    """A transactional upstream's commit marker follows its last record: the range's end is the reader's position,
    not its last record, or the marker, the group's offset and the lag stay one short forever."""
    from tone.kafka.readers import RecordChunk

    outputs, store = MemoryOutputs(), MemoryToneStore(StoreConfig(top_min_count=1))
    chunk = RecordChunk("tweets", 0, end=6)  # offsets 0-5: records at 0 and 3, then commit markers at 4 and 5
    chunk.add(0, KAFKA_MS, b"k", tweet(0, "alice"))
    chunk.add(3, KAFKA_MS, b"k", tweet(3, "alice"))
    only_markers = RecordChunk("tweets", 1, end=3)  # a range of an aborted transaction and its marker: no record
    stats = run_task(EXACTLY, [[chunk], [only_markers]], lambda _r: VaderScorer(), ListProducer, lambda: store,
                     outputs=lambda: outputs)  # fmt: skip
    assert [(s.partition, s.end_offset, s.counted) for s in stats] == [(0, 5, 2), (1, 2, 0)]
    assert (store.last_offset("q", "tweets", 0), store.last_offset("q", "tweets", 1)) == (5, 2)
    assert outputs.committed == {("tweets", 0): 6, ("tweets", 1): 3}  # the group's offsets: nothing left to read


def test_producers_of_partitions_other_tasks_took_are_let_go(monkeypatch):
    """Each task takes its partitions' ids afresh (prepare), so a producer kept for another partition is fenced by the
    time it could be used: kept, they added up to partitions x workers librdkafka instances per worker."""
    from tone.kafka.config import KafkaConnection
    from tone.kafka.transactions import KafkaOutputs

    outputs = KafkaOutputs(KafkaConnection(("127.0.0.1:1",)), "g", "q")
    monkeypatch.setattr(outputs, "_new_producer", lambda topic, partition: object())
    outputs.prepare([("t", 0), ("t", 1)])
    outputs._producer("t", 0), outputs._producer("t", 1)
    outputs.prepare([("t", 2)])  # the next task of this worker: another partition
    outputs._producer("t", 2)
    assert sorted(outputs._producers) == [("t", 2)]
    assert outputs.evicted == 2
    outputs.close()
