"""The store contract: the Redis store and its in-memory twin give the same answers to the same writes."""

import pytest
import redis

from tone.aggregates.deltas import Ewma, Scored, batch_deltas
from tone.aggregates.memory_store import MemoryToneStore
from tone.aggregates.redis_store import RedisToneStore
from tone.aggregates.store import StoreConfig, count_records

pytestmark = pytest.mark.integration

NEG = {"negative": 0.8, "neutral": 0.1, "positive": 0.1}
POS = {"negative": 0.1, "neutral": 0.1, "positive": 0.8}


@pytest.fixture
def redis_store(settings, request):
    client = redis.Redis.from_url(settings.redis_url)
    prefix = f"t{abs(hash(request.node.name)) % 10**8}:"
    config = StoreConfig(prefix=prefix, half_life_s=3600, recent_k=3, top_min_count=2, bucket_ttl_s=600)
    yield RedisToneStore(client, config)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture(params=["redis", "memory"])
def store(request):
    if request.param == "memory":
        return MemoryToneStore(StoreConfig(half_life_s=3600, recent_k=3, top_min_count=2, bucket_ttl_s=600))
    return request.getfixturevalue("redis_store")


def tw(user, t, probs):
    label = max(probs, key=probs.get)
    return Scored(user, f"{user}-{t}", t, label, probs, probs["positive"] - probs["negative"], f"tweet {t}", "v1")


def test_apply_is_idempotent_per_offset_range(store):
    batch0 = batch_deltas([tw("alice", 100, POS), tw("alice", 200, NEG), tw("bob", 150, NEG)], 3600, 3)
    assert store.apply_range("q", "tweets", 0, 0, 2, batch0) is True
    snapshot = store.user("alice")
    assert store.apply_range("q", "tweets", 0, 0, 2, batch0) is False  # replayed after a crash: nothing changes
    assert store.apply_range("q", "tweets", 0, 1, 2, batch0) is False  # one step never counts a record twice
    assert store.user("alice") == snapshot
    assert store.last_offset("q", "tweets", 0) == 2
    assert store.last_offset("q", "tweets", 1) is None

    batch1 = batch_deltas([tw("alice", 300, POS)], 3600, 3)
    assert store.apply_range("q", "tweets", 0, 3, 3, batch1) is True
    alice = store.user("alice")
    assert alice["n"] == 3
    assert alice["counts"] == {"positive": 2, "negative": 1}
    assert alice["mean_probs"]["positive"] == pytest.approx((0.8 + 0.1 + 0.8) / 3)
    assert alice["mean_polarity"] == pytest.approx((0.7 - 0.7 + 0.7) / 3)
    # EWMA across batches equals the EWMA of all points at once
    expected = Ewma.of([(100, 0.7), (200, -0.7), (300, 0.7)], 3600).value()
    assert alice["ewma_polarity"] == pytest.approx(expected, rel=1e-9)
    assert (alice["first_seen"], alice["last_seen"]) == (100, 300)
    assert [r["t"] for r in alice["recent"]] == [300, 200, 100]


def test_recent_is_capped_and_buckets_expire(store):
    store.apply_range("q", "tweets", 0, 0, 9, batch_deltas([tw("c", t, POS) for t in range(10)], 3600, 3))
    assert len(store.user("c")["recent"]) == 3
    assert store.hourly("c", "1970010100") == {"positive": 10}
    if isinstance(store, RedisToneStore):  # the in-memory twin keeps buckets for its (short) life
        ttl = store.client.ttl(store.hour_key("c", "1970010100"))
        assert 0 < ttl <= 600


def test_both_stores_hold_the_same_aggregates(redis_store):
    memory = MemoryToneStore(redis_store.config)
    batches = [
        [tw("a", 10, POS), tw("a", 20, NEG), tw("b", 5, NEG), tw("b", 7000, NEG)],
        [tw("a", 9000, NEG), tw("b", 6, POS), tw("c", 1, POS)],
    ]
    for i, batch in enumerate(batches):
        for s in (memory, redis_store):
            assert s.apply_range("q", "t", 0, 10 * i, 10 * i + 9, batch_deltas(batch, 3600, 3)) is True
    for user in ("a", "b", "c"):
        mine, theirs = memory.user(user), redis_store.user(user)
        assert mine.keys() == theirs.keys()
        for key in ("n", "counts", "dominant_label", "first_seen", "last_seen", "recent"):
            assert mine[key] == theirs[key], (user, key)
        for key in ("mean_polarity", "ewma_polarity"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-9), (user, key)
        assert mine["mean_probs"] == pytest.approx(theirs["mean_probs"])
    for by in ("negative", "positive"):
        assert [u for u, _ in memory.top(by)] == [u for u, _ in redis_store.top(by)]


def test_a_user_twice_in_one_step_counts_both_parts(redis_store):
    # The script reads a user's hash once and writes it once; a second part of the same user in one step must add to
    # what the first wrote, not to what was there before the step.
    memory = MemoryToneStore(redis_store.config)
    first, second = [tw("a", 10, POS), tw("a", 20, NEG)], [tw("a", 30, POS)]
    for s in (memory, redis_store):
        s.apply_range("q", "t", 0, 0, 0, batch_deltas([tw("a", 5, NEG)], 3600, 3))
        parts = batch_deltas(first, 3600, 3) + batch_deltas(second, 3600, 3)
        assert s.apply_range("q", "t", 0, 1, 3, parts) is True
    mine, theirs = memory.user("a"), redis_store.user("a")
    assert theirs["n"] == 4
    assert theirs["counts"] == {"positive": 2, "negative": 2}
    assert theirs["mean_probs"] == pytest.approx(mine["mean_probs"], rel=1e-12)
    assert theirs["ewma_polarity"] == pytest.approx(mine["ewma_polarity"], rel=1e-9)
    assert [r["t"] for r in theirs["recent"]] == [30, 20, 10]


def test_sums_keep_every_bit_of_a_double(redis_store):
    # A user's sums are a double's sum of each step's delta, stored with 17 digits: read back, they are the same
    # double Python gets adding the same deltas in the same order (no 14-digit rounding on the way).
    probs = {"negative": 0.1, "neutral": 0.2, "positive": 0.7000000000000001}
    expected = dict.fromkeys(probs, 0.0)
    for i in range(30):
        redis_store.apply_range("q", "t", 0, i, i, batch_deltas([tw("d", i, probs)], 3600, 3))
        for label, p in probs.items():
            expected[label] += p
    stored = redis_store.client.hgetall(redis_store.user_key("d"))
    assert {label: float(stored[f"prob_sum:{label}".encode()]) for label in probs} == expected
    assert int(stored[b"n"]) == 30


def test_top_users_need_the_minimum_count(store):
    tweets = [tw("grump", 1, NEG), tw("grump", 2, NEG), tw("sunny", 1, POS), tw("sunny", 2, POS), tw("once", 1, NEG)]
    store.apply_range("q", "tweets", 0, 0, 4, batch_deltas(tweets, 3600, 3))
    assert [u for u, _ in store.top("negative")] == ["grump", "sunny"]
    assert store.top("positive")[0] == ("sunny", pytest.approx(0.8))
    assert "once" not in dict(store.top("negative"))
    assert store.user("nobody") is None
    with pytest.raises(ValueError, match="negative or positive"):
        store.top("neutral")


HOSTILE_IDS = [
    "a:recent",
    "a:h:2026112310",
    "*",
    "{x}",
    "a}:{b",
    "%61",
    "x" * 256,
    "ünïcødé 🙂",
    " spaced id ",
    "tab\tinside",
]


def test_no_user_id_can_address_another_users_keys(store):
    ids = ["a", *HOSTILE_IDS]
    t = 1_795_428_780  # 2026-11-23 10:13 UTC: hour bucket 2026112310, the one "a:h:2026112310" names
    tweets = [tw(u, t + i, NEG if i % 2 else POS) for u in ids for i in range(2)]
    assert store.apply_range("q", "tweets", 0, 0, len(tweets) - 1, batch_deltas(tweets, 3600, 3)) is True
    for u in ids:
        agg = store.user(u)
        assert agg["user_id"] == u
        assert agg["n"] == 2, u
        assert agg["counts"] == {"positive": 1, "negative": 1}, u
        assert len(agg["recent"]) == 2, u
        assert store.hourly(u, "2026112310") == {"positive": 1, "negative": 1}, u
    assert {u for u, _ in store.top("negative", 100)} == set(ids)


def test_a_write_that_fails_half_way_changes_nothing(redis_store):
    store = redis_store
    before = batch_deltas([tw("first", 1, POS), tw("first", 2, POS)], 3600, 3)
    store.apply_range("q", "tweets", 0, 0, 1, before)
    snapshot = store.user("first")
    # A key of the wrong type under the second user's recent list, as a hostile writer or an old layout left it:
    # the script must find it before it writes anything.
    store.client.set(store.recent_key("second"), "not a list")
    batch = batch_deltas([tw("first", 3, NEG), tw("second", 4, NEG), tw("third", 5, NEG)], 3600, 3)
    with pytest.raises(redis.ResponseError, match="second"):
        store.apply_range("q", "tweets", 0, 2, 4, batch)
    assert store.user("first") == snapshot
    assert store.user("third") is None
    assert store.last_offset("q", "tweets", 0) == 1  # not applied: a retry (once fixed) counts it exactly once


def test_a_range_overlapping_the_counted_offsets_counts_its_new_records(store):
    # The per-record rule over the atomic step: a re-planned range (a lost checkpoint) straddles the marker.
    first = [(o, tw("alice", 100 + o, POS)) for o in range(5)]
    assert count_records(store, "q", "tweets", 0, first, 4).counted == 5
    again = [(o, tw("alice", 100 + o, POS)) for o in range(3, 9)]
    done = count_records(store, "q", "tweets", 0, again, 8, step=2)
    assert (done.counted, done.already, done.steps) == (4, 2, 2)
    assert store.user("alice")["n"] == 9
    assert store.last_offset("q", "tweets", 0) == 8


def test_idle_users_expire_with_their_top_entries_and_markers_stay(settings, request):
    client = redis.Redis.from_url(settings.redis_url)
    prefix = f"ttl{abs(hash(request.node.name)) % 10**8}:"
    config = StoreConfig(prefix=prefix, top_min_count=1, user_ttl_s=100)
    store = RedisToneStore(client, config)
    try:
        store.apply_range("q", "tweets", 0, 0, 1, batch_deltas([tw("a", 1, NEG), tw("b", 2, NEG)], 3600, 3))
        assert 0 < client.ttl(store.user_key("a")) <= 100
        assert 0 < client.ttl(store.recent_key("a")) <= 100
        assert client.ttl(f"{prefix}applied:q:tweets:0") == -1  # no TTL: never evicted by volatile-* policies
        client.delete(store.user_key("a"), store.recent_key("a"))  # as if a's keys expired
        assert [u for u, _ in store.top("negative")] == ["b"]
        assert client.zscore(f"{prefix}top:negative", "a") is not None  # reads write nothing: left for the sweep
        store.apply_range("q", "tweets", 0, 2, 2, batch_deltas([tw("c", 3, POS)], 3600, 3))
        client.delete(store.user_key("c"))
        # The sweep after each batch removes them: a's two entries, c's two.
        assert store.prune_top({}) == 4
        for label in ("negative", "positive"):
            assert client.zrange(f"{prefix}top:{label}", 0, -1) == [b"b"]
        assert store.eviction_warning() is None  # the stack's Redis: noeviction
        client.config_set("maxmemory-policy", "allkeys-lru")
        try:
            assert "may evict the offset markers" in (store.eviction_warning() or "")
        finally:
            client.config_set("maxmemory-policy", "noeviction")
    finally:
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()


def test_the_store_bench_counts_in_the_steps_asked_and_leaves_no_keys(settings):
    from benchmarks.store import run_store_bench

    client = redis.Redis.from_url(settings.redis_url)
    before = client.dbsize()
    result = run_store_bench(settings, 300, [300, 100], say=lambda _: None)
    assert [(r["step"], r["atomic_steps"]) for r in result["rows"]] == [(300, 1), (100, 3)]
    assert all(r["lookups"] > 0 for r in result["rows"])
    assert 300 < result["bytes_per_user_1_tweet"] < result["bytes_per_user_full_recent"]
    assert client.dbsize() == before
    client.close()


def unscored(user, t, lang):
    return Scored(user, f"{user}-{t}", t, "", {}, 0.0, f"tweet {t}", "", lang, scored=False)


def test_unscored_tweets_count_by_language_and_never_in_the_tone(store):
    mixed = [tw("alice", 100, POS), unscored("alice", 150, "ja"), tw("alice", 200, NEG), unscored("alice", 250, "de")]
    store.apply_range("q", "tweets", 0, 0, 3, batch_deltas(mixed, 3600, 3))
    store.apply_range("q", "tweets", 1, 0, 1, batch_deltas([tw("bob", 100, POS), tw("bob", 200, NEG)], 3600, 3))
    store.apply_range("q", "tweets", 2, 0, 0, batch_deltas([unscored("carol", 120, "ja")], 3600, 3))
    store.apply_range("q", "tweets", 2, 1, 1, batch_deltas([unscored("carol", 130, "ja")], 3600, 3))
    alice, bob, carol = store.user("alice"), store.user("bob"), store.user("carol")
    assert (alice["n"], alice["scored"], alice["languages"]) == (4, 2, {"und": 2, "ja": 1, "de": 1})
    assert (alice["counts"], alice["dominant_label"]) == (bob["counts"], bob["dominant_label"])
    for key in ("mean_probs", "mean_polarity", "ewma_polarity"):
        assert alice[key] == pytest.approx(bob[key], rel=1e-12), key
    assert (alice["first_seen"], alice["last_seen"]) == (100, 250)  # seen: every counted tweet
    assert store.hourly("alice", "1970010100") == {"positive": 1, "negative": 1}
    assert [r["label"] for r in alice["recent"]] == [None, "negative", None]  # newest first, capped at 3
    assert (carol["n"], carol["scored"], carol["counts"], carol["ewma_polarity"]) == (2, 0, {}, None)
    top = dict(store.top("positive", 10)) | dict(store.top("negative", 10))
    assert "alice" in top and "carol" not in top  # ranked by scored tweets (top_min_count 2)
    # The mean in the top set is over scored tweets only.
    assert dict(store.top("positive", 10))["alice"] == pytest.approx((0.8 + 0.1) / 2)


def test_a_user_counted_before_tweets_could_go_unscored_keeps_every_tweet_as_scored(redis_store):
    """Hashes written before the 'scored' field existed: their n tweets were all scored."""
    key = redis_store.user_key("old")
    redis_store.client.hset(key, mapping={"n": 2, "count:positive": 2, "prob_sum:positive": 1.6,
                                          "prob_sum:negative": 0.2, "polarity_sum": 1.4})  # fmt: skip
    assert redis_store.user("old")["scored"] == 2
    redis_store.apply_range("q", "tweets", 0, 0, 1, batch_deltas([tw("old", 100, POS), unscored("old", 110, "ja")],
                                                                  3600, 3))  # fmt: skip
    old = redis_store.user("old")
    assert (old["n"], old["scored"], old["counts"]) == (4, 3, {"positive": 3})
    assert old["mean_probs"]["positive"] == pytest.approx(2.4 / 3)


# Every kind of field the apply script writes, each corrupted the ways a hand edit or an old layout can: the script
# must refuse before its first write (Redis keeps a failed script's earlier writes), so nothing changes.
CORRUPTIONS = [
    ("n", "1.5"),
    ("n", "nan"),
    ("scored", "inf"),
    ("count:positive", "1e3"),
    ("lang:en", "2.5"),
    ("prob_sum:positive", "nan"),
    ("prob_sum:negative", "abc"),
    ("polarity_sum", "inf"),
    ("ewma_s", "-inf"),
    ("ewma_w", "nan"),
    ("ewma_t", "x"),
    ("first_seen", "nan"),
    ("last_seen", "inf"),
    ("h:positive", "1.5"),  # an hourly bucket's count: written with HINCRBY once, after the user's HSET
    ("h:positive", "nan"),
    ("h:negative", "inf"),
]


@pytest.mark.parametrize(("field", "value"), CORRUPTIONS, ids=[f"{f}={v}" for f, v in CORRUPTIONS])
def test_a_corrupted_field_of_any_kind_refuses_the_step_before_anything_is_written(redis_store, field, value):
    store = redis_store
    store.apply_range("q", "tweets", 0, 0, 1, batch_deltas([tw("first", 1, POS), tw("second", 2, NEG)], 3600, 3))
    first, hourly = store.user("first"), store.hourly("first", "1970010100")
    if field.startswith("h:"):
        store.client.hset(store.hour_key("second", "1970010100"), field[2:], value)
    else:
        store.client.hset(store.user_key("second"), field, value)
    corrupted = store.client.hgetall(store.user_key("second"))
    step = [tw("first", 3, NEG), Scored("first", "j", 4, "", {}, 0.0, "x", "", "ja", scored=False)]
    step += [tw("second", 5, POS), tw("second", 6, NEG), Scored("second", "k", 7, "", {}, 0.0, "x", "", "en", False)]
    with pytest.raises(redis.ResponseError, match="refused, nothing written"):
        store.apply_range("q", "tweets", 0, 2, 6, batch_deltas(step, 3600, 3))
    assert store.user("first") == first
    assert store.hourly("first", "1970010100") == hourly
    assert store.client.hgetall(store.user_key("second")) == corrupted
    assert store.last_offset("q", "tweets", 0) == 1


@pytest.fixture
def replica(settings, tmp_path):
    """A read-only replica of the stack's Redis (Debian's redis-server), synced."""
    import subprocess
    import time

    from tests.conftest import free_port

    port = free_port()
    primary = settings.redis_url.rsplit(":", 1)[1].split("/")[0]
    proc = subprocess.Popen(  # noqa: S603
        ["redis-server", "--port", str(port), "--replicaof", "127.0.0.1", primary, "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if client.info("replication").get("master_link_status") == "up":
                    break
            except redis.ConnectionError:
                pass
            time.sleep(0.1)
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


def test_lookups_and_top_run_on_a_read_replica(redis_store, replica):
    """The read side writes nothing: top-N leaves expired users out without removing them (the stream's sweep
    does), and a user's hourly buckets come in one pipeline."""

    store = redis_store
    store.config = StoreConfig(**{**store.config.__dict__, "user_ttl_s": 100, "top_min_count": 1})
    users = [tw(f"u{i}", 3600 * (i % 3), NEG if i % 2 else POS) for i in range(12)]
    store.apply_range("q", "tweets", 0, 0, 11, batch_deltas(users, 3600, 3))
    store.client.delete(store.user_key("u1"))  # expired
    read = RedisToneStore(replica, store.config)
    # The replica has every write above once it acknowledged them (polling for u1's absence passed before u1 ever
    # reached a slow replica).
    assert store.client.execute_command("WAIT", 1, 10_000) == 1
    top = read.top("negative", 3)
    assert [u for u, _ in top] == [u for u, _ in store.top("negative", 3)] and "u1" not in dict(top)
    hours = ["1970010100", "1970010101", "1970010102", "1970010103"]
    calls = []
    read.client.hgetall = lambda *a: calls.append(a)  # one pipeline, not a call per hour
    assert read.hourly_many("u4", hours) == [{}, {"positive": 1}, {}, {}]
    assert calls == []
    with pytest.raises(redis.ReadOnlyError):
        replica.set("x", 1)  # it is a replica: any write above would have failed


@pytest.mark.parametrize("kind", ["redis", "memory"])
def test_tweet_ids_count_once_within_the_horizon(settings, request, kind):
    client = redis.Redis.from_url(settings.redis_url)
    prefix = f"dd{abs(hash(request.node.name)) % 10**8}:"
    config = StoreConfig(prefix=prefix, top_min_count=1, dedupe_horizon_s=3600)
    store = RedisToneStore(client, config) if kind == "redis" else MemoryToneStore(config)
    try:
        store.apply_range("q", "tweets", 0, 0, 1, batch_deltas([tw("a", 1, POS), tw("b", 2, NEG)], 3600, 3))
        assert store.counted_ids({"a": ["a-1", "a-9"], "b": ["b-2"], "c": ["c-1"]}) == {("a", "a-1"), ("b", "b-2")}
        before = store.user("a")
        error = redis.ResponseError if kind == "redis" else RuntimeError
        with pytest.raises(error, match="a-1 .*counted already"):  # one the task did not see: the step is refused
            store.apply_range("q", "tweets", 0, 2, 3, batch_deltas([tw("a", 1, NEG), tw("c", 3, POS)], 3600, 3))
        assert store.user("a") == before and store.user("c") is None and store.last_offset("q", "tweets", 0) == 1
        if kind == "redis":
            ids = store.ids_key("a")
            assert 0 < client.ttl(ids) <= 3600
            # counted long ago, outside the horizon: a-1 and 70 others
            client.hset(ids, mapping={"a-1": "1.0", **{f"old{i}": "1.0 [1]" for i in range(70)}})
            assert store.counted_ids({"a": ["a-1"]}) == set()
            store.apply_range("q", "tweets", 0, 2, 2, batch_deltas([tw("a", 1, NEG)], 3600, 3))  # counts again
            assert store.user("a")["n"] == 2
            # past 64 ids the step trimmed what fell out of the horizon, and marked how many it kept
            assert set(client.hkeys(ids)) == {b"a-1", b"\0trim"} and client.hget(ids, "\0trim") == b"1"
            client.hset(ids, "a-2", "not a time")
            assert store.counted_ids({"a": ["a-1", "a-2"]}) == {("a", "a-1")}  # a bad entry is not counted
    finally:
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()


@pytest.mark.parametrize("kind", ["redis", "memory"])
def test_a_deletion_takes_back_exactly_what_its_tweet_added_and_an_erasure_leaves_only_a_tombstone(
    settings, request, kind
):
    client = redis.Redis.from_url(settings.redis_url)
    prefix = f"del{abs(hash(request.node.name)) % 10**8}:"
    config = StoreConfig(prefix=prefix, half_life_s=3600, recent_k=3, top_min_count=1, dedupe_horizon_s=3600)
    store = RedisToneStore(client, config) if kind == "redis" else MemoryToneStore(config)
    try:
        sent = [tw("a", 3600 * 10 + 60 * i, POS if i % 2 else NEG) for i in range(5)]
        kept = [tw("b", x.created_at, x.probs) for x in sent if x.tweet_id not in ("a-36060", "a-36180")]
        store.apply_range("q", "tweets", 0, 0, 4, batch_deltas(sent, 3600, 3, contributions=True))
        store.apply_range("q", "tweets", 1, 0, 2, batch_deltas(kept, 3600, 3, contributions=True))
        contributions = store.kept_contributions({"a": ["a-36060", "a-36180", "a-nope"]})
        assert set(contributions) == {("a", "a-36060"), ("a", "a-36180")}
        deletions = [Scored.deletion("a", t, c) for (_, t), c in contributions.items()]
        store.apply_range("q", "tweets", 0, 5, 5, batch_deltas(deletions, 3600, 3))
        a, b = store.user("a"), store.user("b")
        for key in ("n", "scored", "counts", "languages", "dominant_label"):
            assert a[key] == b[key], key
        for key in ("mean_probs", "mean_polarity", "ewma_polarity"):
            assert a[key] == pytest.approx(b[key], abs=1e-12), key
        # The recent list drops a deleted tweet; it is not refilled with an older one it no longer holds.
        assert [r["id"] for r in a["recent"]] == ["a-36240", "a-36120"]
        assert store.hourly("a", "1970010110") == store.hourly("b", "1970010110")
        assert store.kept_contributions({"a": ["a-36060"]}) == {}  # taken out once: a second deletion is unmatched
        with pytest.raises(redis.ResponseError if kind == "redis" else RuntimeError, match="is gone"):
            store.apply_range("q", "tweets", 0, 6, 6, batch_deltas(deletions[:1], 3600, 3))

        assert store.forget("a", 3600 * 11) is True
        assert store.user("a") is None and store.hourly("a", "1970010110") == {}
        assert store.forgotten(["a", "b"]) == {"a": 3600 * 11}
        assert "a" not in dict(store.top("positive", 10)) and "b" in dict(store.top("positive", 10))
        assert store.forget("a", 3600 * 5) is False  # idempotent; an earlier time never moves the tombstone back
        assert store.forgotten(["a"]) == {"a": 3600 * 11}
        if kind == "redis":
            left = sorted(k.decode() for k in client.scan_iter(f"{prefix}user:*a*"))
            assert left == [f"{store.user_key('a')}:forgotten"]
            assert 86_400 - 5 <= client.ttl(left[0]) <= 86_400  # the horizon, and at least a day
    finally:
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()


def shadowed(user, t, probs, candidate_label, lang="en"):
    from tone.aggregates.shadow import Shadowed

    base = tw(user, t, probs)
    sh = Shadowed("cand-1", candidate_label, 0.25, live_s=0.001, shadow_s=0.003)
    return Scored(base.user_id, base.tweet_id, t, base.label, probs, base.polarity, base.text, "v1", lang, shadow=sh)


def test_shadow_evidence_counts_once_with_its_step_and_a_bad_key_refuses_the_step(store):
    from tone.aggregates.shadow import step_evidence

    step = [shadowed("alice", 1, POS, "positive"), shadowed("bob", 2, NEG, "neutral"), tw("carol", 3, POS)]
    evidence = step_evidence(step)
    assert store.apply_range("q", "tweets", 0, 0, 2, batch_deltas(step, 3600, 3), evidence=evidence) is True
    assert store.apply_range("q", "tweets", 0, 0, 2, batch_deltas(step, 3600, 3), evidence=evidence) is False
    (e,) = store.shadow_evidence("q")
    assert (e["live"], e["candidate"], e["n"], e["agreement"]) == ("v1", "cand-1", 2, 0.5)
    assert e["flips"] == {"positive": {"positive": 1}, "negative": {"neutral": 1}}
    assert e["mean_abs_polarity_change"] == pytest.approx((abs(0.25 - 0.7) + abs(0.25 + 0.7)) / 2)
    assert (e["live_ms_per_tweet"], e["shadow_ms_per_tweet"]) == (pytest.approx(1.0), pytest.approx(3.0))
    assert [f["id"] for f in e["flipped"]] == ["bob-2"]
    assert store.shadow_evidence("other") == []
    if isinstance(store, RedisToneStore):
        key = store.evidence_key("q")
        store.client.hset(key, "v1\tcand-1\tn", "lots")
        before = store.user("alice")
        more = [shadowed("alice", 4, POS, "negative")]
        with pytest.raises(redis.ResponseError, match="refused, nothing written.*not an integer"):
            store.apply_range("q", "tweets", 0, 3, 3, batch_deltas(more, 3600, 3), evidence=step_evidence(more))
        assert store.user("alice") == before and store.last_offset("q", "tweets", 0) == 2
