"""count_records on a sharded store (the Redis Cluster layout, here in memory): each shard counts each record once
against its own marker, a retry after a partial apply completes the shards that are behind, and the partition's
marker only moves once every shard has counted the range."""

import random

import pytest

from tone.aggregates.deltas import Scored
from tone.aggregates.memory_store import MemoryToneStore
from tone.aggregates.store import StoreConfig, count_records

POS = {"negative": 0.1, "neutral": 0.1, "positive": 0.8}
USERS = [f"u{i}" for i in range(40)]


def records(offsets, seed=0):
    rng = random.Random(seed)
    return [
        (o, Scored(rng.choice(USERS), f"t{o}", 1_795_000_000.0 + o, "positive", POS, 0.7, "ok", "v")) for o in offsets
    ]


def expected(recs):
    counts: dict[str, int] = {}
    for _, s in recs:
        counts[s.user_id] = counts.get(s.user_id, 0) + 1
    return counts


def counts(store):
    return {u: store.user(u)["n"] for u in USERS if store.user(u)}


def sharded(**kw):
    return MemoryToneStore(StoreConfig(top_min_count=1), shards=8, **kw)


def test_each_shard_counts_its_part_and_the_partition_marker_follows():
    s = sharded()
    recs = records(range(200))
    done = count_records(s, "q", "t", 0, recs, 204)
    assert (done.counted, done.marker) == (200, 204)
    assert counts(s) == expected(recs)
    assert s.last_offset("q", "t", 0) == 204
    shards = sorted({s.shard_of(r.user_id) for _, r in recs})
    assert len(shards) > 1
    assert s.shard_offsets("q", "t", 0, shards) == [204] * len(shards)
    # The same range again (a retried task) counts nothing.
    assert count_records(s, "q", "t", 0, recs, 204).counted == 0
    assert counts(s) == expected(recs)


def test_a_task_killed_between_shards_is_completed_by_its_retry_and_nothing_counts_twice():
    s = sharded(fail_after_steps=3)
    recs = records(range(300))
    with pytest.raises(RuntimeError, match="test hook"):
        count_records(s, "q", "t", 0, recs, 299)
    partial = counts(s)
    assert 0 < sum(partial.values()) < 300
    # The partition marker did not move: a reader must read the range again.
    assert s.last_offset("q", "t", 0) is None
    s.fail_after_steps = None
    done = count_records(s, "q", "t", 0, recs, 299)
    assert done.counted == 300 - sum(partial.values())
    assert done.already == sum(partial.values())
    assert counts(s) == expected(recs)
    assert s.last_offset("q", "t", 0) == 299


def test_a_retry_planned_with_other_boundaries_after_a_partial_apply_counts_each_record_once():
    s = sharded(fail_after_steps=5)
    recs = records(range(1000), seed=3)
    with pytest.raises(RuntimeError):
        count_records(s, "q", "t", 0, recs[:600], 599, step=7)
    s.fail_after_steps = None
    # The re-planned retry covers more offsets (a bigger trigger) in other steps.
    done = count_records(s, "q", "t", 0, recs, 999, step=50)
    assert done.already > 0
    assert counts(s) == expected(recs)


@pytest.mark.parametrize("seed", range(20))
def test_random_kills_and_replans_never_lose_or_double(seed):
    rng = random.Random(seed)
    s = sharded()
    recs = records(range(2000), seed=seed)
    pos = 0  # the checkpoint: ranges are re-planned from here after each kill
    while pos < 2000:
        end = min(1999, pos + rng.randint(1, 600))
        s.fail_after_steps = rng.choice([None, rng.randint(0, 40)])
        try:
            count_records(s, "q", "t", 0, recs[pos : end + 1], end, step=rng.randint(1, 100))
        except RuntimeError:
            # Killed: the next attempt restarts somewhere at or before the checkpoint (a lost checkpoint goes back).
            pos = rng.randint(max(0, pos - 300), pos)
            continue
        pos = end + 1
    s.fail_after_steps = None
    assert counts(s) == expected(recs)
