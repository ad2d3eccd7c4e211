"""Shadow scoring in the per-record pipeline: the candidate's labels are evidence, never tone, counted exactly once."""

import dataclasses
import json
from collections import Counter

from streaming.pipeline import TaskConfig, chunks_of, run_task
from tests.unit.streaming.test_pipeline import CONFIG, KAFKA_MS, ListProducer, lang_tweet, records, tweet
from tone.aggregates.memory_store import MemoryToneStore
from tone.aggregates.store import StoreConfig
from tone.language import Routes
from tone.scoring.base import ToneResult
from tone.scoring.vader import VaderScorer

TEXTS = ["I love it", "I hate it", "It is a table", "Great day!", "Awful service", "meh", "So happy", "terrible"]


class Contrary(VaderScorer):
    """A candidate that swaps VADER's positive and negative: every polar tweet flips (in any language)."""

    languages = None

    def __init__(self, fail_on=None):
        super().__init__()
        self.version = "contrary-1"
        self.fail_on = fail_on

    def score(self, texts):
        if self.fail_on is not None and any(self.fail_on in t for t in texts):
            raise RuntimeError("candidate bug")
        swap = {"positive": "negative", "negative": "positive", "neutral": "neutral"}
        return [
            ToneResult(swap[r.label], {swap[k]: v for k, v in r.probs.items()}, -r.polarity)
            for r in super().score(texts)
        ]


def shadow_run(values, store, *, config=CONFIG, candidate=Contrary, start=0, producer=None):
    producer = producer if producer is not None else ListProducer()
    loads = []

    def shadow():
        loads.append(1)
        return candidate()

    stats = run_task(
        config,
        [list(chunks_of(records(values, 0, start)))],
        lambda _route: VaderScorer(),
        lambda: producer,
        lambda: store,
        clock=lambda: KAFKA_MS / 1000 + 100,
        shadow=shadow,
    )
    return stats, producer, loads


def flip_matrix(sent):
    """The flip matrix a consumer of the scored topic computes: {live: {candidate: n}} over tweets with a shadow."""
    matrix: dict[str, Counter] = {}
    for topic, _, value, _ in sent:
        x = json.loads(value)
        if topic == "scored" and x.get("shadow"):
            matrix.setdefault(x["label"], Counter())[x["shadow"]["label"]] += 1
    return {k: dict(v) for k, v in matrix.items()}


def test_the_candidate_scores_in_shadow_and_never_touches_the_tone():
    values = [tweet(i, f"u{i % 2}", TEXTS[i]) for i in range(len(TEXTS))]
    alone = MemoryToneStore(StoreConfig(top_min_count=1))
    run_task(CONFIG, [list(chunks_of(records(values)))], lambda _r: VaderScorer(), ListProducer, lambda: alone)
    store = MemoryToneStore(StoreConfig(top_min_count=1))
    (stats,), producer, _ = shadow_run(values, store)
    for user in ("u0", "u1"):  # the tone is what the live model alone makes it
        assert store.user(user) == alone.user(user)
    scored = [json.loads(v) for t, _, v, _ in producer.sent if t == "scored"]
    assert all(x["shadow"]["model"] == "contrary-1" for x in scored)
    assert all(x["shadow"]["polarity"] == -x["polarity"] for x in scored)
    (evidence,) = store.shadow_evidence("q")
    assert (evidence["live"], evidence["candidate"], evidence["n"]) == ("vader-3.3.2", "contrary-1", len(TEXTS))
    assert evidence["flips"] == flip_matrix(producer.sent)
    polar = sum(x["label"] != "neutral" for x in scored)
    assert polar > 0
    assert evidence["agreement"] == (len(TEXTS) - polar) / len(TEXTS)
    assert len(evidence["flipped"]) == polar and {f["shadow"] for f in evidence["flipped"]} <= {"positive", "negative"}
    assert evidence["languages"] == {"und": {"n": len(TEXTS), "agreement": evidence["agreement"]}}
    assert evidence["shadow_ms_per_tweet"] > 0 and evidence["live_ms_per_tweet"] > 0
    assert (stats.shadowed, stats.shadow_model, stats.shadow_error) == (len(TEXTS), "contrary-1", "")


def test_a_retried_or_overlapping_range_counts_its_evidence_once():
    values = [tweet(i, "alice", TEXTS[i % len(TEXTS)]) for i in range(12)]
    store = MemoryToneStore(StoreConfig(top_min_count=1))
    shadow_run(values[:7], store)  # offsets 0-6
    shadow_run(values, store)  # a lost checkpoint reads 0-11 again: 7-11 are new
    _, producer, loads = shadow_run(values, store)  # a retry of everything: nothing new
    assert producer.sent == [] and loads == []  # nothing scored, so no candidate loaded
    (evidence,) = store.shadow_evidence("q")
    assert evidence["n"] == 12


def test_a_stable_sample_of_records_is_shadowed():
    values = [tweet(i, "alice", TEXTS[i % len(TEXTS)]) for i in range(400)]
    config = dataclasses.replace(CONFIG, shadow_sample=0.25)
    picked = []
    for _ in range(2):
        (stats,), producer, _ = shadow_run(values, MemoryToneStore(StoreConfig(top_min_count=1)), config=config)
        picked.append([json.loads(v)["id"] for t, _, v, _ in producer.sent if json.loads(v).get("shadow")])
    assert picked[0] == picked[1]  # every attempt picks the same records
    assert 60 < len(picked[0]) < 140 and stats.shadowed == len(picked[0])


def test_only_languages_the_candidate_reads_are_shadowed():
    class EnglishOnly(Contrary):
        languages = ("en",)

    config = dataclasses.replace(CONFIG, routes=Routes.parse("*=default"))
    values = [lang_tweet(0, "a", "I love it", lang="en"), lang_tweet(1, "a", "Ich liebe es", lang="de")]
    store = MemoryToneStore(StoreConfig(top_min_count=1))
    _, producer, _ = shadow_run(values, store, config=config, candidate=EnglishOnly)
    shadows = {json.loads(v)["id"]: json.loads(v).get("shadow") for _, _, v, _ in producer.sent}
    assert shadows["t0"] is not None and shadows["t1"] is None
    assert store.shadow_evidence("q")[0]["languages"] == {"en": {"n": 1, "agreement": 0.0}}


def test_a_candidate_that_raises_or_fails_to_load_is_dropped_and_live_scoring_goes_on():
    values = [tweet(i, "alice", TEXTS[i]) for i in range(4)] + [tweet(9, "alice", "poison pill")]
    for candidate in (lambda: Contrary(fail_on="poison"), lambda: (_ for _ in ()).throw(OSError("no such file"))):
        store = MemoryToneStore(StoreConfig(top_min_count=1))
        (stats,), producer, _ = shadow_run(values, store, candidate=candidate)
        assert stats.counted == 5 and store.user("alice")["scored"] == 5
        assert stats.shadow_error.split(":")[0] in ("RuntimeError", "OSError") and stats.shadowed == 0
        assert store.shadow_evidence("q") == []
        assert not any(json.loads(v).get("shadow") for _, _, v, _ in producer.sent)


def test_a_sharded_store_counts_each_shards_evidence_in_its_own_step():
    values = [tweet(i, f"user{i % 9}", TEXTS[i % len(TEXTS)]) for i in range(40)]
    store = MemoryToneStore(StoreConfig(top_min_count=1), shards=4)
    _, producer, _ = shadow_run(values, store, config=dataclasses.replace(CONFIG, step_tweets=3))
    assert len({k for k in store.evidence}) > 1  # several shards hold a part
    (evidence,) = store.shadow_evidence("q")
    assert evidence["n"] == 40 and evidence["flips"] == flip_matrix(producer.sent)


def test_task_config_reads_the_sample_setting(tmp_path):
    from tone.settings import load_settings

    settings = load_settings(shadow_sample=0.5, model_dir=tmp_path)
    assert TaskConfig.from_settings(settings, "q").shadow_sample == 0.5
