import pytest
import redis

from tone.aggregate import Ewma, Scored, batch_deltas
from tone.store import StoreConfig, ToneStore

pytestmark = pytest.mark.integration

NEG = {"negative": 0.8, "neutral": 0.1, "positive": 0.1}
POS = {"negative": 0.1, "neutral": 0.1, "positive": 0.8}


@pytest.fixture
def store(settings, request):
    client = redis.Redis.from_url(settings.redis_url)
    prefix = f"t{abs(hash(request.node.name)) % 10**8}:"
    yield ToneStore(client, StoreConfig(prefix=prefix, half_life_s=3600, recent_k=3, top_min_count=2, bucket_ttl_s=600))
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def tw(user, t, probs):
    label = max(probs, key=probs.get)
    return Scored(user, f"{user}-{t}", t, label, probs, probs["positive"] - probs["negative"], f"tweet {t}", "v1")


def test_apply_is_idempotent_per_offset_range(store):
    batch0 = batch_deltas([tw("alice", 100, POS), tw("alice", 200, NEG), tw("bob", 150, NEG)], 3600, 3)
    assert store.apply_range("q", "tweets", 0, 0, 2, batch0) is True
    snapshot = store.user("alice")
    assert store.apply_range("q", "tweets", 0, 0, 2, batch0) is False  # replayed after a crash: nothing changes
    assert store.apply_range("q", "tweets", 0, 1, 2, batch0) is False  # overlapping: refused too
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
    ttl = store.client.ttl(f"{store.config.prefix}user:c:h:1970010100")
    assert 0 < ttl <= 600


def test_top_users_need_the_minimum_count(store):
    tweets = [tw("grump", 1, NEG), tw("grump", 2, NEG), tw("sunny", 1, POS), tw("sunny", 2, POS), tw("once", 1, NEG)]
    store.apply_range("q", "tweets", 0, 0, 4, batch_deltas(tweets, 3600, 3))
    assert [u for u, _ in store.top("negative")] == ["grump", "sunny"]
    assert store.top("positive")[0] == ("sunny", pytest.approx(0.8))
    assert "once" not in dict(store.top("negative"))
    assert store.user("nobody") is None
    with pytest.raises(ValueError, match="negative or positive"):
        store.top("neutral")
