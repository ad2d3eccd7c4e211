"""Tags and the stream's timeline on a real Redis, against the in-memory twin: same counts, minutes, shifts."""

from __future__ import annotations

import random

import pytest
import redis

from tone.aggregates.deltas import Scored
from tone.aggregates.memory_store import MemoryToneStore
from tone.aggregates.redis_store import RedisToneStore
from tone.aggregates.store import StoreConfig, count_records
from tone.aggregates.timeline import tag_report, timeline_report
from tone.tags import STREAM

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0  # a minute boundary
TURN = T0 + 90 * 60
PROBS = {"negative": 0.2, "neutral": 0.3, "positive": 0.5}


def feed(seed: int = 3, minutes: int = 180) -> list[tuple[int, Scored]]:
    """Three hours, a tweet every 6 s, 0-2 tags each; #launch turns negative at TURN; some tweets late by 400 s."""
    rng = random.Random(seed)
    out = []
    for o in range(minutes * 10):
        t = T0 + o * 6 - (400 if o % 97 == 0 and o else 0)
        tags = tuple(rng.sample(["#launch", "#steady", "$tsla", "#東京"], rng.randint(0, 2)))
        share = 0.75 if "#launch" in tags and t >= TURN else 0.1
        scored = rng.random() > 0.05
        label = "negative" if rng.random() < share else rng.choice(["positive", "neutral"])
        polarity = -0.5 if label == "negative" else 0.5
        out.append((o, Scored(f"u{o % 50}", f"t{o}", t, label if scored else "", PROBS if scored else {},
                              polarity if scored else 0.0, "x", "v", "en", scored=scored, tags=tags)))  # fmt: skip
    return out


@pytest.fixture
def pair(settings, request):
    client = redis.Redis.from_url(settings.redis_url)
    prefix = f"c{abs(hash(request.node.name)) % 10**8}:"
    config = StoreConfig(prefix=prefix, top_min_count=1, dedupe_horizon_s=3600, tags=True, lateness_s=120)
    yield RedisToneStore(client, config), MemoryToneStore(config)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def test_tags_and_the_timeline_count_each_record_once_and_match_the_twin(pair, settings):
    recs = feed()
    for store in pair:
        for i in range(0, len(recs), 300):
            part = recs[i : i + 300]
            count_records(store, "q", "t", 0, part, part[-1][0], step=50)
        count_records(store, "q", "t", 0, recs[:450], 449, step=50)  # a retried, overlapping range: counts nothing
    red, twin = pair
    expected: dict[str, int] = {}
    for _, s in recs:
        for tag in (STREAM, *s.tags):
            expected[tag] = expected.get(tag, 0) + 1
    for tag, n in expected.items():
        mine, theirs = tag_report(red, tag, settings), tag_report(twin, tag, settings)
        assert mine is not None and theirs is not None
        assert mine["tweets"] == theirs["tweets"] == n
        for field in ("scored", "counts", "shifts", "late", "languages", "mean_probs", "ewma_polarity"):
            assert mine[field] == theirs[field], (tag, field)
        timeline = timeline_report(red, tag, 200, settings)
        assert timeline == timeline_report(twin, tag, 200, settings)
        assert sum(m["tweets"] for m in timeline["minutes"]) == n  # every tweet in its minute, late ones too
        assert sum(sum(m["counts"].values()) for m in timeline["minutes"]) == mine["scored"]
    # Late against the stream's event time as the step before left it: each 400 s late tweet, unless its own step
    # started less than its lateness after its minute.
    assert 0 < tag_report(red, STREAM, settings)["late"] <= sum(1 for o, _ in recs if o % 97 == 0 and o)
    launch = tag_report(red, "#launch", settings)["shifts"]
    assert len(launch) == 1 and launch[0]["direction"] == "negative"
    assert TURN <= launch[0]["at_s"] <= TURN + 10 * 60
    assert tag_report(red, "$tsla", settings)["shifts"] == [] == tag_report(red, "#東京", settings)["shifts"]
    assert red.top_tags("n", 10) == twin.top_tags("n", 10)
    assert STREAM not in dict(red.top_tags("n", 10))


def test_a_deletion_takes_its_tweet_out_of_its_tags_and_minutes(pair, settings):
    for store in pair:
        recs = feed(minutes=40)
        count_records(store, "q", "t", 0, recs, recs[-1][0], step=50)
        victim = next(s for _, s in recs if s.tags and s.scored)
        kept = store.kept_contributions({victim.user_id: [victim.tweet_id]})
        deletion = Scored.deletion(victim.user_id, victim.tweet_id, kept[victim.user_id, victim.tweet_id])
        assert deletion is not None and deletion.tags == victim.tags
        before = {tag: tag_report(store, tag, settings) for tag in victim.tags}
        count_records(store, "q", "t", 0, [(len(recs), deletion)], len(recs), step=50)
        for tag in victim.tags:
            after = tag_report(store, tag, settings)
            assert after["tweets"] == before[tag]["tweets"] - 1
            assert after["counts"][victim.label] == before[tag]["counts"][victim.label] - 1
            assert victim.tweet_id not in {r["id"] for r in after["recent"]}
            minutes = timeline_report(store, tag, 60, settings)["minutes"]
            assert sum(m["tweets"] for m in minutes) == after["tweets"]


def test_a_tag_no_key_can_spell_stays_in_its_own_keys(pair, settings):
    hostile = ["#a}{b", "#x:recent", "#*", "$%41"]
    red, twin = pair
    recs = [(i, Scored("u", f"h{i}", T0 + i, "negative", PROBS, -0.5, "x", "v", tags=(tag, "#plain")))
            for i, tag in enumerate(hostile)]  # fmt: skip
    for store in pair:
        count_records(store, "q", "t", 0, recs, len(recs) - 1)
    for tag in [*hostile, "#plain"]:
        assert tag_report(red, tag, settings)["tweets"] == tag_report(twin, tag, settings)["tweets"]
    assert tag_report(red, "#plain", settings)["tweets"] == len(hostile)
    assert tag_report(red, STREAM, settings)["tweets"] == len(hostile)


def test_a_tag_on_probation_expires_soon_and_is_not_ranked_until_it_has_enough_tweets(pair):
    red, _ = pair
    tags = [("#once",), *[("#often",)] * 5]
    recs = [(i, Scored("u", f"p{i}", T0 + i, "negative", PROBS, -0.5, "x", "v", tags=t)) for i, t in enumerate(tags)]
    count_records(red, "q", "t", 0, recs, 5)
    c = red.config
    once, often = red.tag_key("#once"), red.tag_key("#often")
    assert 0 < red.client.ttl(once) <= c.tag_probation_s
    assert 0 < red.client.ttl(f"{once}:recent") <= c.tag_probation_s
    assert c.tag_probation_s < red.client.ttl(often) <= c.tag_ttl_s
    assert [t for t, _ in red.top_tags("n", 10)] == ["#often"]  # 5 tweets: out of probation; #once is not ranked


def test_minutes_close_at_the_slowest_partitions_event_time_and_late_is_per_partition(pair):
    from tone.aggregates.timeline import closed_until

    def tw(i: int, t: float) -> Scored:
        return Scored("u", f"w{i}", t, "neutral", PROBS, 0.0, "x", "v", tags=("#w",))

    for store in pair:
        count_records(store, "q", "t", 0, [(0, tw(0, T0 + 1800))], 0)  # partition 0 at T0 + 30 min
        count_records(store, "q", "t", 1, [(0, tw(1, T0 + 600))], 0)  # partition 1 behind, at T0 + 10 min
        assert closed_until(store, 120) == T0 + 600 - 120  # its earlier minutes may still come
        # A tweet 20 minutes behind partition 0 but ahead of partition 1's own time is not late: keyed input is in
        # order per partition, and a fast replay must not count the other partitions' progress against it.
        count_records(store, "q", "t", 1, [(1, tw(2, T0 + 900))], 1)
        assert store.tag(STREAM)["late"] == 0
        count_records(store, "q", "t", 0, [(1, tw(3, T0 + 1500))], 1)  # 5 minutes behind its own partition: late
        assert store.tag(STREAM)["late"] == 1
        count_records(store, "q", "t", 2, [(0, tw(4, T0 - 7200))], 0)  # an idle partition, hours behind
        assert closed_until(store, 120) == T0 + 900 - 120
    red, twin = pair
    assert red.tag(STREAM)["watermarks"] == twin.tag(STREAM)["watermarks"] == {
        "t:0": T0 + 1800, "t:1": T0 + 900, "t:2": T0 - 7200,
    }  # fmt: skip


def test_an_erasure_takes_the_users_kept_tweets_out_of_their_tags_recent_lists(pair, settings):
    recs = [(i, Scored("gone" if i % 2 else "stays", f"e{i}", T0 + i, "negative", PROBS, -0.5, f"text {i}", "v",
                       tags=("#topic",))) for i in range(6)]  # fmt: skip
    for store in pair:
        count_records(store, "q", "t", 0, recs, 5)
        assert {r["user"] for r in tag_report(store, "#topic", settings)["recent"]} == {"gone", "stays"}
        assert store.forget("gone", T0 + 100)
        report = tag_report(store, "#topic", settings)
        assert {r["user"] for r in report["recent"]} == {"stays"}
        assert report["tweets"] == 6  # the tag's counts stay: anonymous sums


def test_the_http_api_serves_tags_the_timeline_and_shifts(pair, settings):
    from urllib.parse import quote

    from fastapi.testclient import TestClient

    from serving.api import create_app

    red, _ = pair
    recs = feed(minutes=100)
    count_records(red, "q", "t", 0, recs, recs[-1][0], step=50)
    s = settings.model_copy(update={"redis_key_prefix": red.config.prefix, "top_min_count": 1})
    client = TestClient(create_app(s))
    launch = client.get(f"/tags/{quote('#launch', safe='')}/tone").json()
    assert launch == tag_report(red, "#launch", s)
    assert client.get("/tags/launch/tone").json()["tweets"] == launch["tweets"]  # a bare word is a hashtag
    assert client.get("/tags/$TSLA/tone").json()["tag"] == "$tsla"
    for missing in ("#never", "0", "a b"):
        assert client.get(f"/tags/{quote(missing, safe='')}/tone").status_code == 404
    active = client.get("/tags", params={"by": "n", "n": 3}).json()["tags"]
    assert [t["tag"] for t in active] == [t for t, _ in red.top_tags("n", 3)]
    assert client.get("/tags", params={"by": "loudest"}).status_code == 422
    minutes = client.get("/timeline", params={"minutes": 30}).json()["minutes"]
    assert len(minutes) == 30 and sum(m["tweets"] for m in minutes) > 0
    assert client.get("/timeline", params={"tag": "#launch", "minutes": 100}).json() == timeline_report(
        red, "#launch", 100, s
    )
    shifts = client.get("/shifts").json()["shifts"]
    assert any(x["tag"] == "#launch" and x["direction"] == "negative" for x in shifts)
