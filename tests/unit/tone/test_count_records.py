"""The per-record rule (tone.aggregates.store.count_records) on the in-memory store: a record counts once iff its
offset is above the marker, whatever the range boundaries, in bounded atomic steps."""

import pytest

from tone.aggregates.deltas import Scored
from tone.aggregates.memory_store import MemoryToneStore
from tone.aggregates.store import StoreConfig, count_records

POS = {"negative": 0.1, "neutral": 0.1, "positive": 0.8}


def scored(offsets, user="alice"):
    return [(o, Scored(user, f"t{o}", 1_795_000_000.0 + o, "positive", POS, 0.7, "ok", "v")) for o in offsets]


def store():
    return MemoryToneStore(StoreConfig(top_min_count=1))


def test_a_range_straddling_the_marker_counts_exactly_its_records_above_it():
    s = store()
    assert count_records(s, "q", "t", 0, scored(range(10)), 9).counted == 10
    # A lost checkpoint re-plans from offset 5: the old code refused the whole range (start <= last) and lost 10-14.
    done = count_records(s, "q", "t", 0, scored(range(5, 15)), 14)
    assert (done.counted, done.already, done.marker) == (5, 5, 14)
    assert s.user("alice")["n"] == 15
    # The same range once more (a retried task): nothing.
    assert count_records(s, "q", "t", 0, scored(range(5, 15)), 14).counted == 0
    assert s.user("alice")["n"] == 15


def test_offsets_without_records_end_a_range_like_any_other():
    s = store()
    # 2 and 5 are transaction markers (or aborted records): no record, and the range ends at the marker offset 5.
    done = count_records(s, "q", "t", 0, scored([0, 1, 3, 4]), 5)
    assert (done.counted, done.marker) == (4, 5)
    assert count_records(s, "q", "t", 0, scored([6]), 6).counted == 1
    assert s.user("alice")["n"] == 5


def test_a_range_of_invalid_records_only_moves_the_marker():
    s = store()
    assert count_records(s, "q", "t", 0, [], 7).marker == 7
    assert s.last_offset("q", "t", 0) == 7


@pytest.mark.parametrize("step", [1, 7, 1000])
def test_big_ranges_go_in_bounded_steps_and_count_each_record_once(step):
    s = store()
    records = scored(range(0, 2500, 2))  # 1,250 records over offsets 0-2498
    done = count_records(s, "q", "t", 0, records, 2499, step=step)
    assert done.counted == 1250
    assert done.steps == -(-1250 // step)
    assert s.user("alice")["n"] == 1250
    assert s.last_offset("q", "t", 0) == 2499


class Racing(MemoryToneStore):
    """Another attempt of the same range counts offsets up to ``other`` just before this one's first step."""

    def __init__(self, other):
        super().__init__(StoreConfig(top_min_count=1))
        self.other, self.refused = other, 0

    def apply_range(self, query, topic, partition, start, end, deltas, shard=0, evidence=None):
        if self.other is not None:
            other, self.other = self.other, None
            super().apply_range(query, topic, partition, 0, other, [])  # marker only: those tweets are the other's
        ok = super().apply_range(query, topic, partition, start, end, deltas, shard, evidence)
        self.refused += not ok
        return ok


def test_a_step_refused_because_another_attempt_moved_the_marker_goes_on_above_it():
    s = Racing(other=1500)
    done = count_records(s, "q", "t", 0, scored(range(3000)), 2999, step=1000, last=None)
    assert s.refused == 1
    assert done.counted == 1499  # offsets 1501-2999: the rest were the other attempt's
    assert s.user("alice")["n"] == 1499
    assert s.last_offset("q", "t", 0) == 2999


def test_a_store_that_refuses_below_its_marker_fails_the_task_instead_of_looping():
    class Refusing(MemoryToneStore):
        def apply_range(self, *args):
            return False

    with pytest.raises(RuntimeError, match="refused offsets 0-9 .* at marker None"):
        count_records(Refusing(), "q", "t", 0, scored(range(10)), 9)
