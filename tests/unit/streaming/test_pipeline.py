"""The stream's per-record logic with in-memory sinks: no Spark, Kafka or Redis (streaming/pipeline.py)."""

import dataclasses
import json

import pytest

from streaming.pipeline import TaskConfig, chunks_of, run_task
from tone.aggregates.memory_store import MemoryToneStore
from tone.aggregates.store import StoreConfig
from tone.kafka.clients import DeliveryError
from tone.langid import LanguageDetector
from tone.language import Routes
from tone.scoring.base import ToneResult
from tone.scoring.vader import VaderScorer

CONFIG = TaskConfig("q", "dlq", "scored", 4000, 65536, 3600.0, 5)


class ListProducer:
    """Keeps what was sent; ``fail`` makes flush report undelivered records, as a broker outage would."""

    def __init__(self, fail=False):
        self.sent, self.flushed, self.fail = [], 0, fail

    def send(self, topic, *, key=None, value, headers=None):
        self.sent.append((topic, key, value, dict(headers or [])))

    def flush(self, timeout=60.0):
        self.flushed += 1
        if self.fail:
            raise DeliveryError(f"{len(self.sent)} of {len(self.sent)} messages were not acknowledged")


def tweet(i, user, text="I love it", created="2026-11-23T10:00:00Z"):
    return json.dumps({"id": f"t{i}", "user_id": user, "text": text, "created_at": created}).encode()


KAFKA_MS = 1_795_428_000_000  # the records' Kafka timestamps: 2026-11-23T10:00:00Z, the tweets' created_at


def records(values, partition=0, start=0):
    return [("tweets", partition, start + i, KAFKA_MS + i, b"k", v) for i, v in enumerate(values)]


def run(values_by_partition, producer=None, store=None, scorer=None, start=0):
    producer = producer if producer is not None else ListProducer()
    store = store if store is not None else MemoryToneStore(StoreConfig(top_min_count=1))
    sources = [list(chunks_of(records(values, partition, start))) for partition, values in values_by_partition.items()]
    build = scorer or VaderScorer
    stats = run_task(
        CONFIG, sources, lambda _route: build(), lambda: producer, lambda: store, clock=lambda: KAFKA_MS / 1000 + 100
    )
    return stats, producer, store


def test_valid_records_are_counted_and_bad_ones_dead_lettered_with_reason_and_source():
    stats, producer, store = run({0: [tweet(0, "alice"), b"not json", tweet(1, "alice", "I hate it")], 1: [b"{}"]})
    assert [(s.partition, s.start_offset, s.end_offset, s.records, s.valid, s.invalid) for s in stats] == [
        (0, 0, 2, 3, 2, 1),
        (1, 0, 0, 1, 0, 1),
    ]
    assert all(s.applied for s in stats)
    dlq = [(v, h) for topic, _, v, h in producer.sent if topic == "dlq"]
    assert [(v, h["reason"], h["source"]) for v, h in dlq] == [
        (b"not json", b"invalid_json", b"tweets:0:1"),
        (b"{}", b"missing_field", b"tweets:1:0"),
    ]
    scored = [json.loads(v) for topic, _, v, _ in producer.sent if topic == "scored"]
    assert [(x["id"], x["label"], x["model_version"]) for x in scored] == [
        ("t0", "positive", "vader-3.3.2"),
        ("t1", "negative", "vader-3.3.2"),
    ]
    assert store.user("alice")["counts"] == {"positive": 1, "negative": 1}
    assert store.last_offset("q", "tweets", 1) == 0  # a range of invalid records only still moves the bookkeeping


def test_a_delivery_that_fails_counts_nothing_and_raises():
    store = MemoryToneStore()
    with pytest.raises(DeliveryError, match="not acknowledged"):
        run({0: [tweet(0, "alice"), b"oops"]}, producer=ListProducer(fail=True), store=store)
    assert store.user("alice") is None
    assert store.last_offset("q", "tweets", 0) is None  # the range is not done: a retry applies it


def test_a_replayed_range_changes_nothing():
    values = [tweet(i, f"u{i % 3}") for i in range(9)]
    _, _, store = run({0: values})
    before = {u: store.user(u) for u in ("u0", "u1", "u2")}
    stats, producer, _ = run({0: values}, store=store)
    assert [(s.applied, s.already, s.counted) for s in stats] == [(False, 9, 0)]
    assert {u: store.user(u) for u in ("u0", "u1", "u2")} == before
    assert producer.sent == []  # counted means sent: a replay neither scores nor sends them again


def test_a_range_overlapping_what_was_counted_counts_and_sends_only_the_new_records():
    _, _, store = run({0: [tweet(i, "alice") for i in range(6)]})  # offsets 0-5 counted
    # A lost checkpoint (or a re-planned range) reads offsets 3-9 again.
    stats, producer, _ = run({0: [tweet(i, "alice") for i in range(3, 10)]}, store=store, start=3)
    assert (stats[0].already, stats[0].counted, stats[0].applied) == (3, 4, True)
    assert store.user("alice")["n"] == 10
    assert [json.loads(v)["id"] for _, _, v, _ in producer.sent] == ["t6", "t7", "t8", "t9"]
    assert store.last_offset("q", "tweets", 0) == 9


def test_a_tweet_dated_after_its_kafka_timestamp_by_more_than_the_limit_is_dead_lettered():
    # Kafka timestamps are 10:00:00; CONFIG allows 300 s ahead.
    near = tweet(1, "alice", created="2026-11-23T10:04:59Z")
    far = tweet(2, "alice", created="2027-01-01T00:00:00Z")
    stats, producer, store = run({0: [tweet(0, "alice"), near, far]})
    (letter,) = [h for topic, _, _, h in producer.sent if topic == "dlq"]
    assert letter["reason"] == b"future_timestamp"
    assert letter["source"] == b"tweets:0:2"
    assert b"TONE_MAX_FUTURE_S" in letter["detail"]
    alice = store.user("alice")
    assert alice["n"] == 2
    assert alice["last_seen"] == pytest.approx(KAFKA_MS / 1000 + 299)  # not frozen in 2027
    assert stats[0].counted == 2


def test_a_record_whose_handling_raises_is_dead_lettered_alone():
    class OddOutput(VaderScorer):
        """Returns, for one text, a result nothing downstream can serialise (as a buggy model might)."""

        def score(self, texts):
            results = super().score(texts)
            return [
                ToneResult(r.label, {**r.probs, "weird": object()}, r.polarity) if t == "poison" else r
                for t, r in zip(texts, results, strict=True)
            ]

    poison = tweet(1, "bob", text="poison")
    stats, producer, store = run({0: [tweet(0, "alice"), poison, tweet(2, "alice")]}, scorer=OddOutput)
    (letter,) = [(v, h) for topic, _, v, h in producer.sent if topic == "dlq"]
    assert letter[0] == poison
    assert letter[1]["reason"] == b"internal_error"
    assert letter[1]["detail"].startswith(b"TypeError")
    assert letter[1]["source"] == b"tweets:0:1"
    assert store.user("alice")["n"] == 2
    assert store.user("bob") is None
    assert (stats[0].valid, stats[0].invalid, stats[0].applied) == (2, 1, True)


def test_a_time_that_overflows_in_utc_is_dead_lettered_at_parse_time():
    # 9999-12-31T23:59:59-23:59 is UTC year 10000: it once passed validation and crashed every retry
    stats, producer, store = run({0: [tweet(0, "alice"), tweet(1, "bob", created="9999-12-31T23:59:59-23:59")]})
    (letter,) = [h for topic, _, _, h in producer.sent if topic == "dlq"]
    assert letter["reason"] == b"invalid_timestamp"
    assert store.user("alice")["n"] == 1
    assert stats[0].applied


def test_no_model_is_loaded_for_a_task_of_invalid_records():
    def no_scorer():
        raise AssertionError("the scorer must not be loaded")

    stats, _, _ = run({0: [b"x", b"y"]}, scorer=no_scorer)
    assert stats[0].invalid == 2


def test_a_scorer_failure_fails_the_whole_batch():
    class Broken(VaderScorer):
        def predict_proba(self, texts):
            raise RuntimeError("CUDA error: device lost")

    store = MemoryToneStore()
    with pytest.raises(RuntimeError, match="device lost"):
        run({0: [tweet(0, "alice")]}, scorer=Broken, store=store)
    assert store.last_offset("q", "tweets", 0) is None


def test_offsets_lost_to_retention_are_reported_even_when_no_record_is_left():
    from tone.kafka.readers import RecordChunk

    store = MemoryToneStore(StoreConfig(top_min_count=1))
    store.apply_range("q", "tweets", 2, 0, 11, [])  # partition 2: offsets up to 11 were counted before
    only_lost = RecordChunk("tweets", 0, lost=[(0, 30)])  # the whole range was deleted before it was read
    then = RecordChunk("tweets", 1, lost=[(0, 5)])
    then.add(5, KAFKA_MS, b"k", tweet(5, "alice"))
    # An attempt that got further than its checkpoint counted up to 11; 8-19 were deleted since: only 12-19 are lost.
    counted_before = RecordChunk("tweets", 2, lost=[(8, 20)])
    counted_before.add(20, KAFKA_MS, b"k", tweet(20, "bob"))
    stats = run_task(
        CONFIG, [[only_lost], [then], [counted_before]], lambda _r: VaderScorer(), ListProducer, lambda: store
    )
    assert [(s.partition, s.lost, s.records, s.start_offset, s.counted) for s in stats] == [
        (0, 30, 0, -1, 0),
        (1, 5, 1, 5, 1),
        (2, 8, 1, 20, 1),
    ]
    assert store.last_offset("q", "tweets", 0) is None
    assert store.user("alice")["n"] == 1


def test_markers_the_task_read_already_are_not_read_again():
    class Counting(MemoryToneStore):
        reads = 0

        def last_offset(self, query, topic, partition):
            self.reads += 1
            return super().last_offset(query, topic, partition)

    store = Counting(StoreConfig(top_min_count=1))
    sources = [list(chunks_of(records([tweet(0, "alice"), tweet(1, "bob")])))]
    stats = run_task(
        CONFIG, sources, lambda _r: VaderScorer(), ListProducer, lambda: store, markers={("tweets", 0): None}
    )
    assert (store.reads, stats[0].counted) == (0, 2)


# -- languages and routes -----------------------------------------------------------------------------------------
ENGLISH_ONLY = dataclasses.replace(CONFIG, routes=Routes.parse("en=default"))


def lang_tweet(i, user, text, lang=None, created="2026-11-23T10:00:00Z"):
    data = {"id": f"t{i}", "user_id": user, "text": text, "created_at": created}
    if lang is not None:
        data["lang"] = lang
    return json.dumps(data).encode()


def run_routed(values, config=ENGLISH_ONLY, detector=None, store=None):
    producer, store = ListProducer(), store or MemoryToneStore(StoreConfig(top_min_count=1))
    detector = detector or (lambda: LanguageDetector(["en", "de", "ja", "fr"], ["en"]))
    stats = run_task(
        config,
        [list(chunks_of(records(values)))],
        lambda _route: VaderScorer(),
        lambda: producer,
        lambda: store,
        clock=lambda: KAFKA_MS / 1000 + 100,
        detector=detector,
    )
    return stats, producer, store


def test_a_tweet_no_route_scores_is_counted_by_language_and_never_enters_the_tone():
    english = ["I love this so much, best day ever", "This is awful, I hate waiting in line"]
    values = [
        lang_tweet(0, "alice", english[0]),
        lang_tweet(1, "alice", "最悪だ、本当に腹が立つ"),  # Japanese, detected
        lang_tweet(2, "alice", english[1]),
        lang_tweet(3, "alice", "Das ist schrecklich, ich hasse es.", lang="de"),  # declared
        lang_tweet(4, "bob", english[0]),
        lang_tweet(5, "bob", english[1]),
        lang_tweet(6, "carol", "Ich liebe diesen Tag, alles ist wunderbar"),  # never scored at all
    ]
    (stats,), producer, store = run_routed(values)
    alice, bob, carol = store.user("alice"), store.user("bob"), store.user("carol")
    assert (alice["n"], alice["scored"], alice["languages"]) == (4, 2, {"en": 2, "ja": 1, "de": 1})
    # The tone of alice's tweets is the tone of her English ones: the same as bob, who only sent those.
    for key in ("counts", "mean_probs", "mean_polarity", "ewma_polarity", "dominant_label"):
        assert alice[key] == bob[key], key
    assert store.hourly("alice", "2026112309") == store.hourly("bob", "2026112309")
    assert (carol["n"], carol["scored"], carol["counts"], carol["ewma_polarity"]) == (1, 0, {}, None)
    assert "carol" not in dict(store.top("negative", 10)) | dict(store.top("positive", 10))
    assert sorted(r["lang"] for r in alice["recent"]) == ["de", "en", "en", "ja"]  # recent: every counted tweet
    assert {r["id"]: r["label"] for r in alice["recent"]}["t1"] is None
    scored = {x["id"]: x for x in (json.loads(v) for topic, _, v, _ in producer.sent if topic == "scored")}
    assert len(scored) == 7  # every counted tweet is written, scored or not
    assert (scored["t1"]["lang"], scored["t1"]["lang_source"], scored["t1"]["label"], scored["t1"]["unscored"]) == (
        "ja",
        "detected",
        None,
        "no_route",
    )
    assert (scored["t3"]["lang"], scored["t3"]["lang_source"]) == ("de", "declared")
    assert (scored["t0"]["lang"], scored["t0"]["lang_source"], "unscored" in scored["t0"]) == ("en", "detected", False)
    assert (stats.valid, stats.unscored, json.loads(stats.langs)) == (7, 3, {"en": 4, "ja": 1, "de": 2})
    assert json.loads(stats.labels) and sum(json.loads(stats.labels).values()) == 4  # drift sees scored tweets only


def test_declared_languages_are_honoured_exactly_and_need_no_detector():
    def no_detector():
        raise AssertionError("every tweet declares its language: nothing to detect")

    values = [lang_tweet(0, "alice", "ok", lang="en"), lang_tweet(1, "alice", "lol 😂", lang="en-US"),
              lang_tweet(2, "alice", "I love it", lang="fr")]  # fmt: skip
    (stats,), producer, store = run_routed(values, detector=no_detector)
    alice = store.user("alice")
    assert (alice["n"], alice["scored"], alice["languages"]) == (3, 2, {"en": 2, "fr": 1})
    assert stats.lang_ignored == 0


def test_a_declared_lang_that_is_not_a_tag_is_counted_and_the_language_detected():
    values = [lang_tweet(0, "alice", "I love this so much, best day ever", lang="klingon"),
              json.dumps({"id": "t1", "user_id": "alice", "text": "I love it a lot", "lang": 5,
                          "created_at": "2026-11-23T10:00:00Z"}).encode()]  # fmt: skip
    (stats,), producer, store = run_routed(values)
    assert (stats.valid, stats.invalid, stats.lang_ignored) == (2, 0, 2)
    assert store.user("alice")["languages"] == {"en": 2}


def test_each_route_scores_its_languages_with_its_own_scorer():
    class Other(VaderScorer):
        def __init__(self):
            super().__init__()
            self.version = "other-1"

    config = dataclasses.replace(CONFIG, routes=Routes.parse("en=default,de=other"))
    asked = []

    def scorer(route):
        asked.append(route)
        return Other() if route == "other" else VaderScorer()

    values = [lang_tweet(0, "a", "I love it", lang="en"), lang_tweet(1, "a", "Ich liebe es", lang="de"),
              lang_tweet(2, "a", "J'adore", lang="fr")]  # fmt: skip
    producer, store = ListProducer(), MemoryToneStore(StoreConfig(top_min_count=1))
    (stats,) = run_task(config, [list(chunks_of(records(values)))], scorer, lambda: producer, lambda: store)
    assert sorted(asked) == ["default", "other"]
    scored = {x["id"]: x for x in (json.loads(v) for _, _, v, _ in producer.sent)}
    assert (scored["t0"]["model_version"], scored["t1"]["model_version"], scored["t2"]["label"]) == (
        "vader-3.3.2",
        "other-1",
        None,
    )
    assert stats.model_version == "other-1,vader-3.3.2"


# -- one bad record stays one record ------------------------------------------------------------------------------
class Choking(VaderScorer):
    """Raises on any set of texts that holds one with "poison" in it, as a tokenizer bug might on one input."""

    calls = 0

    def score(self, texts):
        Choking.calls += 1
        if any("poison" in t for t in texts):
            raise RuntimeError("index out of range in self (a token id past the embedding)")
        return super().score(texts)


def test_a_record_that_makes_the_scorer_raise_is_dead_lettered_alone_and_the_rest_counts():
    values = [tweet(i, f"u{i % 5}", "I love it" if i not in (7, 23) else "poison pill") for i in range(40)]
    Choking.calls = 0
    stats, producer, store = run({0: values}, scorer=Choking)
    letters = [(v, h) for topic, _, v, h in producer.sent if topic == "dlq"]
    assert [h["source"] for _, h in letters] == [b"tweets:0:7", b"tweets:0:23"]
    assert {h["reason"] for _, h in letters} == {b"internal_error"}
    assert letters[0][1]["detail"].startswith(b"RuntimeError: index out of range")
    assert (stats[0].valid, stats[0].invalid, stats[0].counted) == (38, 2, 38)
    assert sum(store.user(f"u{i}")["n"] for i in range(5)) == 38
    assert Choking.calls < 40  # halves, not one call a record: about k log n


def test_a_scorer_that_fails_on_everything_fails_the_batch_rather_than_dead_letter_it():
    class Broken(VaderScorer):
        def score(self, texts):
            raise RuntimeError("CUDA error: device lost")

    store = MemoryToneStore()
    with pytest.raises(RuntimeError, match="device lost"):
        run({0: [tweet(i, "alice") for i in range(10)]}, scorer=Broken, store=store)
    assert store.last_offset("q", "tweets", 0) is None  # nothing counted, nothing dead-lettered: retried


def test_a_dead_letter_is_cut_to_fit_with_a_header_saying_so():
    huge = b"x" * 1_040_000  # about the broker's own limit: the copy plus headers was refused for ever
    config = dataclasses.replace(CONFIG, dead_letter_max_bytes=524_288)
    producer, store = ListProducer(), MemoryToneStore(StoreConfig(top_min_count=1))
    run_task(config, [list(chunks_of(records([huge, tweet(1, "alice")])))], lambda _r: VaderScorer(),
             lambda: producer, lambda: store)  # fmt: skip
    ((_, key, value, headers),) = [s for s in producer.sent if s[0] == "dlq"]
    assert len(key or b"") + len(value) + sum(len(k) + len(v) for k, v in headers.items()) <= 524_288
    assert value == huge[: len(value)] and headers["truncated"] == b"1040001"  # key b"k" + value
    assert headers["reason"] == b"oversized_message"
    assert store.user("alice")["n"] == 1


# -- exactly once per tweet: dedupe by id -------------------------------------------------------------------------
def dedupe_store(**options):
    now = [1_000_000.0]
    store = MemoryToneStore(StoreConfig(top_min_count=1, dedupe_horizon_s=3600), clock=lambda: now[0], **options)
    return store, now


def test_a_tweet_sent_several_times_counts_once_and_is_written_once():
    rng = __import__("random").Random(7)
    sent = []
    for i in range(60):
        copies = rng.randint(1, 3)
        # a re-run file or a rewound reader: the same id again, later, once with another text (the first counts)
        sent += [(i, "I love it" if c == 0 else "I hate it") for c in range(copies)]
    rng.shuffle(sent)
    store, _ = dedupe_store()
    producer = ListProducer()
    values = [tweet(i, f"u{i % 7}", text) for i, text in sent]
    (stats,) = run_task(CONFIG, [list(chunks_of(records(values)))], lambda _r: VaderScorer(), lambda: producer,
                        lambda: store)  # fmt: skip
    assert sum(store.user(f"u{u}")["n"] for u in range(7)) == 60
    assert (stats.valid, stats.duplicates, stats.counted) == (60, len(sent) - 60, 60)
    written = [json.loads(v)["id"] for topic, _, v, _ in producer.sent if topic == "scored"]
    assert sorted(written) == sorted(f"t{i}" for i in range(60))
    firsts = {}
    for i, text in sent:
        firsts.setdefault(i, text)
    assert {x: json.loads(v)["label"] for x, v in ((json.loads(v)["id"], v) for _, _, v, _ in producer.sent)} == {
        f"t{i}": "positive" if text == "I love it" else "negative" for i, text in firsts.items()
    }
    # The same ids sent again later (another range): all duplicates, nothing counted or written.
    again = [tweet(i, f"u{i % 7}") for i in range(60)]
    (stats2,) = run_task(CONFIG, [list(chunks_of(records(again, start=len(sent))))], lambda _r: VaderScorer(),
                         lambda: producer, lambda: store)  # fmt: skip
    assert (stats2.duplicates, stats2.counted) == (60, 0)
    assert sum(store.user(f"u{u}")["n"] for u in range(7)) == 60
    assert store.last_offset("q", "tweets", 0) == len(sent) + 59  # the marker still moves past them


def test_a_duplicate_after_the_horizon_counts_again():
    store, now = dedupe_store()
    run_task(CONFIG, [list(chunks_of(records([tweet(1, "alice")])))], lambda _r: VaderScorer(), ListProducer,
             lambda: store)  # fmt: skip
    now[0] += 3601  # the horizon runs from when it was counted
    (stats,) = run_task(CONFIG, [list(chunks_of(records([tweet(1, "alice")], start=1)))], lambda _r: VaderScorer(),
                        ListProducer, lambda: store)  # fmt: skip
    assert (stats.duplicates, store.user("alice")["n"]) == (0, 2)


def test_a_retried_range_never_takes_its_own_tweets_for_duplicates():
    """Killed between two shards' steps: the shards it finished counted their part (and recorded the ids), the
    partition's marker did not move; the retry finds those tweets counted in their shard, not duplicated."""
    store, _ = dedupe_store(shards=4)
    values = [tweet(i, f"u{i}") for i in range(40)]
    store.fail_after_steps, store.fail_with = 2, ConnectionError("killed between shards")
    with pytest.raises(ConnectionError):
        run_task(CONFIG, [list(chunks_of(records(values)))], lambda _r: VaderScorer(), ListProducer, lambda: store)
    store.fail_after_steps = store.fail_with = None
    (stats,) = run_task(CONFIG, [list(chunks_of(records(values)))], lambda _r: VaderScorer(), ListProducer,
                        lambda: store)  # fmt: skip
    assert stats.duplicates == 0 and stats.already > 0 and stats.already + stats.counted == 40
    assert sum(store.user(f"u{i}")["n"] for i in range(40)) == 40


def test_a_duplicate_counted_after_the_task_looked_refuses_the_step():
    store, _ = dedupe_store()
    from tone.aggregates.deltas import batch_deltas

    def scored(tweet_id):
        from tone.aggregates.deltas import Scored

        return Scored("alice", tweet_id, 1.0, "positive", {"positive": 1.0}, 1.0)

    store.apply_range("q", "tweets", 0, 0, 0, batch_deltas([scored("t1")], 3600, 5))
    with pytest.raises(RuntimeError, match="counted already"):
        store.apply_range("q", "tweets", 1, 0, 0, batch_deltas([scored("t1"), scored("t2")], 3600, 5))
    assert store.user("alice")["n"] == 1


# -- deletions and erasure ----------------------------------------------------------------------------------------
def delete(i, user):
    return json.dumps({"delete": {"id": f"t{i}", "user_id": user}}).encode()


def forget(user):
    return json.dumps({"forget": {"user_id": user}}).encode()


TEXTS = ["I love it", "I hate it", "Best day ever", "Worst service, never again", "It is fine"]


def timed(i, user, hour=9, minute=None):
    """Tweet ``i`` of ``user``, dated in the hour before the records' Kafka time (10:00) unless told otherwise."""
    minute = i % 60 if minute is None else minute
    return tweet(i, user, TEXTS[i % len(TEXTS)], created=f"2026-11-23T{hour:02d}:{minute:02d}:00Z")


def run_many(store, batches):
    """Each batch a range of partition 0, one after the other (offsets continue)."""
    offset, stats = 0, []
    for values in batches:
        (s,) = run_task(CONFIG, [list(chunks_of(records(values, start=offset)))], lambda _r: VaderScorer(),
                        ListProducer, lambda: store)  # fmt: skip
        stats.append(s)
        offset += len(values)
    return stats


def test_a_deleted_tweet_is_taken_back_out_as_if_it_was_never_sent():
    store, _ = dedupe_store()
    sent = [timed(i, "alice") for i in range(12)] + [timed(i, "bob") for i in range(12) if i not in (3, 4, 8)]
    stats = run_many(store, [sent, [delete(3, "alice"), delete(4, "alice")], [delete(8, "alice")]])
    alice, bob = store.user("alice"), store.user("bob")
    for key in ("n", "scored", "counts", "languages", "dominant_label"):
        assert alice[key] == bob[key], key
    for key in ("mean_probs", "mean_polarity", "ewma_polarity"):
        assert alice[key] == pytest.approx(bob[key], abs=1e-12), key
    assert store.hourly("alice", "2026112310") == store.hourly("bob", "2026112310")
    assert {r["id"] for r in alice["recent"]} == {r["id"] for r in bob["recent"]}
    assert [(s.deletes, s.deletes_unmatched) for s in stats] == [(0, 0), (2, 0), (1, 0)]
    # A replay of the deleted tweet within the horizon is a duplicate: it stays out.
    (replayed,) = run_task(CONFIG, [list(chunks_of(records([timed(3, "alice")], start=100)))],
                           lambda _r: VaderScorer(), ListProducer, lambda: store)  # fmt: skip
    assert (replayed.duplicates, store.user("alice")["n"]) == (1, 9)


@pytest.mark.parametrize("order", ["tweet first", "deletion first"])
def test_a_tweet_and_its_deletion_in_one_task_leave_nothing_behind(order):
    """Both in one range (a fast delete, a backlog): the tweet is never counted nor written, its id is recorded."""
    store, _ = dedupe_store()
    producer = ListProducer()
    pair = [timed(1, "alice"), delete(1, "alice")]
    values = [timed(0, "alice"), *(pair if order == "tweet first" else pair[::-1]), timed(2, "alice")]
    (stats,) = run_task(CONFIG, [list(chunks_of(records(values)))], lambda _r: VaderScorer(), lambda: producer,
                        lambda: store)  # fmt: skip
    assert store.user("alice")["n"] == 2 and {r["id"] for r in store.user("alice")["recent"]} == {"t0", "t2"}
    assert [json.loads(v)["id"] for _, _, v, _ in producer.sent] == ["t0", "t2"]
    assert stats.deletes == 1
    (replayed,) = run_task(CONFIG, [list(chunks_of(records([timed(1, "alice")], start=4)))],
                           lambda _r: VaderScorer(), ListProducer, lambda: store)  # fmt: skip
    assert (replayed.duplicates, store.user("alice")["n"]) == (1, 2)


def test_a_deletion_that_comes_before_its_tweet_keeps_the_tweet_out():
    store, _ = dedupe_store()
    (first, second) = run_many(store, [[delete(5, "alice"), timed(1, "alice")], [timed(5, "alice")]])
    assert (first.deletes_unmatched, second.duplicates, store.user("alice")["n"]) == (1, 1, 1)


def test_a_deletion_of_a_tweet_counted_before_the_horizon_changes_nothing_and_says_so():
    store, now = dedupe_store()
    run_many(store, [[timed(1, "alice"), timed(2, "alice")]])
    now[0] += 3601
    before = store.user("alice")
    (stats,) = run_task(CONFIG, [list(chunks_of(records([delete(1, "alice")], start=2)))], lambda _r: VaderScorer(),
                        ListProducer, lambda: store)  # fmt: skip
    assert (stats.deletes, stats.deletes_unmatched) == (0, 1)
    assert store.user("alice") == before


def test_an_erased_user_is_gone_and_stays_gone_when_their_old_tweets_are_replayed():
    store, _ = dedupe_store()
    old = [timed(i, "carol", hour=9) for i in range(6)]
    run_many(store, [old + [timed(1, "dave")]])
    assert "carol" in dict(store.top("positive", 10)) | dict(store.top("negative", 10))
    # The erasure is stamped with its record's Kafka time (10:00 + its offset in ms): tweets dated at 09:xx are older.
    (stats,) = run_task(CONFIG, [list(chunks_of(records([timed(7, "carol", hour=9), forget("carol")], start=7)))],
                        lambda _r: VaderScorer(), ListProducer, lambda: store)  # fmt: skip
    assert (stats.forgets, stats.forgotten) == (1, 1)
    assert store.user("carol") is None and store.hourly("carol", "2026112309") == {}
    assert "carol" not in dict(store.top("positive", 10)) | dict(store.top("negative", 10))
    assert store.user("dave")["n"] == 1
    # A replay of their old tweets (a re-run file) brings nothing back; a newer tweet counts afresh.
    (replay,) = run_task(CONFIG, [list(chunks_of(records([*old, timed(9, "carol", hour=10, minute=1)], start=9)))],
                         lambda _r: VaderScorer(), ListProducer, lambda: store)  # fmt: skip
    assert (replay.forgotten, store.user("carol")["n"]) == (6, 1)


@pytest.mark.parametrize("killed_after", [1, 2, 3, 4])
def test_a_task_killed_between_a_tweets_user_and_tag_shards_counts_every_tag_once_on_retry(killed_after):
    """A tweet counts in its user's shard, each tag's shard and the stream's: an attempt killed between them leaves
    some counted; the retry completes the others and takes none of them for a duplicate of itself."""
    from tone.aggregates.timeline import tag_report
    from tone.settings import load_settings
    from tone.tags import STREAM

    now = [1_000_000.0]
    config = StoreConfig(top_min_count=1, dedupe_horizon_s=3600, tags=True)
    store = MemoryToneStore(config, clock=lambda: now[0], shards=5)
    tags = ["#launch", "#Launch", "$TSLA", "#東京", "#x1", "#steady"]
    values = [tweet(i, f"u{i % 9}", f"I love it {tags[i % 6]} {tags[(i * 7) % 6]}") for i in range(60)]
    store.fail_after_steps, store.fail_with = killed_after, ConnectionError("killed between shards")
    with pytest.raises(ConnectionError):
        run_task(CONFIG, [list(chunks_of(records(values)))], lambda _r: VaderScorer(), ListProducer, lambda: store)
    store.fail_after_steps = store.fail_with = None
    (stats,) = run_task(CONFIG, [list(chunks_of(records(values)))], lambda _r: VaderScorer(), ListProducer,
                        lambda: store)  # fmt: skip
    assert stats.duplicates == 0
    expected: dict[str, int] = {}
    for i in range(60):
        for tag in {STREAM, tags[i % 6].casefold(), tags[(i * 7) % 6].casefold()}:
            expected[tag] = expected.get(tag, 0) + 1
    settings = load_settings()
    assert {tag: tag_report(store, tag, settings)["tweets"] for tag in expected} == expected
    assert sum(store.user(f"u{u}")["n"] for u in range(9)) == 60
