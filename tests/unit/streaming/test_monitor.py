"""The monitor's arithmetic with in-memory parts: lag from the store's bookkeeping, drift, the health record."""

import json
from collections import Counter
from types import SimpleNamespace

from streaming.job import BatchReport
from streaming.monitor import StreamMetrics, StreamMonitor
from tone.aggregates.memory_store import MemoryToneStore
from tone.settings import load_settings


class Reader:
    def __init__(self, ends):
        self.ends = ends

    def partitions(self, topic):
        return sorted(self.ends)

    def end_offsets(self, topic, parts):
        return {p: self.ends[p] for p in parts}

    def beginning_offsets(self, topic, parts):
        return dict.fromkeys(parts, 0)

    def close(self):
        pass


class Group:
    def __init__(self):
        self.commits = []

    def commit(self, topic, offsets):
        self.commits.append((topic, dict(offsets)))

    def close(self):
        pass


def test_lag_drift_and_health_after_a_batch():
    store = MemoryToneStore()
    store.apply_range("q", "tweets", 0, 0, 9, [])  # partition 0 counted up to offset 9; partition 1 never
    now = [1000.0]
    metrics, group = StreamMetrics(), Group()
    monitor = StreamMonitor(
        metrics,
        store,
        Reader({0: 15, 1: 4}),
        group,
        training_mix={"negative": 1, "positive": 3},
        window_s=60,
        clock=lambda: now[0],
    )
    job = SimpleNamespace(
        settings=load_settings(),
        config=SimpleNamespace(query="q", scorer="rnn", shadow=""),
        refresher=None,
        shadow=SimpleNamespace(events=[]),
        shadow_dropped="",
        restarts=1,
        batches=1,
        totals=Counter(records=10, invalid=2, duplicates=4, deletes=2, forgotten=1),
    )
    report = BatchReport(
        0,
        records=10,
        valid=8,
        invalid=2,
        started=990.0,
        finished=992.0,
        model_versions={"rnn-x", "rnn-w"},
        refused={"registry:rnn-y"},
        already=3,
        duplicates=4,
        deletes=2,
        deletes_unmatched=5,
        forgets=1,
        forgotten=1,
        lost=7,
        reasons=Counter({"invalid_json": 2}),
        labels=Counter({"negative": 6, "positive": 2}),
        sampled=4,
        disagreed=1,
    )
    monitor.after_batch(job, report)

    health = store.health("q")
    assert health["lag"] == '{"0": 5, "1": 4}'  # 15 - (9 + 1), and 4 - 0 for the partition never counted
    assert group.commits == [("tweets", {0: 10})]  # only what the store has counted
    assert health["model_version"] == "rnn-x" and health["restarts"] == "1"
    # a swap in progress: two versions in use, and one worker that could not load the new one
    assert json.loads(health["model_versions"]) == ["rnn-w", "rnn-x"]
    assert json.loads(health["refused_on_workers"]) == ["registry:rnn-y"]
    r = metrics.registry
    assert r.get_sample_value("tone_stream_records_total", {"outcome": "invalid"}) == 2
    assert r.get_sample_value("tone_stream_dead_letters_total", {"reason": "invalid_json"}) == 2
    assert r.get_sample_value("tone_stream_lag_records", {"topic": "tweets", "partition": "0"}) == 5
    assert r.get_sample_value("tone_stream_restarts_total") == 1
    assert r.get_sample_value("tone_stream_records_total", {"outcome": "already_counted"}) == 3
    assert r.get_sample_value("tone_stream_lost_offsets_total") == 7
    outcomes = ("duplicate", "delete", "delete_unmatched", "forget", "forgotten")
    assert [r.get_sample_value("tone_stream_records_total", {"outcome": o}) for o in outcomes] == [4, 2, 5, 1, 1]
    assert (health["duplicates"], health["deletes"], health["forgotten"]) == ("4", "2", "1")
    assert r.get_sample_value("tone_model_refresh_total", {"result": "refused_on_worker"}) == 1
    assert r.get_sample_value("tone_drift_label_share", {"label": "negative"}) == 0.75
    assert r.get_sample_value("tone_drift_distance") == 0.5  # |0.75-0.25| + |0.25-0.75|, halved
    assert r.get_sample_value("tone_drift_vader_disagreement_ratio") == 0.25

    # the window forgets old batches
    now[0] = 2000.0
    later = BatchReport(1, records=2, valid=2, started=1999, finished=2000, labels=Counter({"positive": 2}))
    monitor.after_batch(job, later)
    assert r.get_sample_value("tone_drift_label_share", {"label": "positive"}) == 1.0


def test_a_failure_while_publishing_never_reaches_the_stream(caplog):
    class Broken(Reader):
        def partitions(self, topic):
            raise RuntimeError("broker away")

    monitor = StreamMonitor(StreamMetrics(), MemoryToneStore(), Broken({}), None, training_mix=None, window_s=60)
    job = SimpleNamespace(
        settings=load_settings(),
        config=SimpleNamespace(query="q", scorer="vader", shadow=""),
        refresher=None,
        shadow=SimpleNamespace(events=[]),
        shadow_dropped="",
        restarts=0,
        batches=0,
        totals=Counter(),
    )
    monitor.after_batch(job, BatchReport(0, records=1, valid=1, started=1, finished=2))
    assert "could not publish" in caplog.text


def test_offsets_behind_finds_partitions_whose_end_is_below_what_was_counted():
    from tone.kafka.readers import offsets_behind

    assert offsets_behind({0: 10, 1: 3, 2: 7}, {0: 9, 1: 50, 2: None, 3: 4}) == {1: (50, 3)}
    assert offsets_behind({0: 10}, {0: 10}) == {0: (10, 10)}  # counted offset 10, the end says there is none


def test_a_topic_recreated_under_the_running_query_stops_it_after_the_batch(tmp_path):
    """The monitor reads each partition's end and marker after every batch; an end below a marker stops the job."""
    import pytest

    from streaming.job import ToneStream
    from tone.errors import DataLossError

    store = MemoryToneStore()
    store.apply_range("q", "tweets", 1, 0, 40, [])  # partition 1 counted up to offset 40 before the recreation
    job = ToneStream(load_settings(), scorer="vader", checkpoint=tmp_path, query_name="q")
    job.monitor = StreamMonitor(StreamMetrics(), store, Reader({0: 5, 1: 12}), None, training_mix=None, window_s=60)

    class Empty:
        sparkSession = None  # noqa: N815 - Spark's name

    job.planned_tasks = lambda batch_id: []  # nothing to read: only the driver's bookkeeping runs
    with pytest.raises(DataLossError, match=r"partition 1: counted up to offset 40, topic ends at 12.*--query NEW"):
        job._foreach_batch(Empty(), 0)


def test_a_batch_report_keeps_a_bounded_sample_of_lags():
    from streaming.job import REPORT_LAGS
    from streaming.pipeline import RangeStats

    rows = [RangeStats("t", p, lags=json.dumps([p + i / 10_000 for i in range(2000)])) for p in range(12)]
    report = BatchReport.of(3, rows, 1.0, 2.0)
    assert len(report.lags) <= REPORT_LAGS
    assert {int(x) for x in report.lags} == set(range(12))  # every range still in the sample
    assert len(BatchReport.of(4, rows[:1], 1.0, 2.0).lags) == 2000  # a small batch keeps them all


def test_the_shadow_evidence_reaches_health_and_metrics():
    from streaming.pipeline import chunks_of, run_task
    from tests.unit.streaming.test_pipeline import CONFIG, ListProducer, records, tweet
    from tests.unit.streaming.test_shadow import TEXTS, Contrary
    from tone.scoring.vader import VaderScorer

    store = MemoryToneStore()
    values = [tweet(i, "alice", TEXTS[i]) for i in range(len(TEXTS))]
    rows = run_task(
        CONFIG, [list(chunks_of(records(values)))], lambda _r: VaderScorer(), ListProducer, lambda: store,
        shadow=Contrary,
    )  # fmt: skip
    metrics = StreamMetrics()
    monitor = StreamMonitor(metrics, store, Reader({0: 8}), None, training_mix=None, window_s=60)
    job = SimpleNamespace(
        settings=load_settings(),
        config=SimpleNamespace(query="q", scorer="vader", shadow="vader"),
        refresher=None,
        shadow=SimpleNamespace(events=[SimpleNamespace(action="drop")]),
        shadow_dropped="",
        restarts=0,
        batches=1,
        totals=Counter(records=8),
    )
    monitor.after_batch(job, BatchReport.of(0, rows, 1, 2))
    shadow = json.loads(store.health("q")["shadow"])
    (pair,) = shadow["pairs"]
    assert (shadow["candidate"], shadow["candidate_version"], pair["candidate"]) == (
        "vader",
        "contrary-1",
        "contrary-1",
    )
    assert pair["n"] == 8 and "flipped" not in pair
    r = metrics.registry
    labels = {"live": "vader-3.3.2", "candidate": "contrary-1"}
    assert r.get_sample_value("tone_shadow_tweets", labels) == 8
    assert r.get_sample_value("tone_shadow_agreement_ratio", labels) == pair["agreement"]
    assert r.get_sample_value("tone_shadow_flips", labels | {"live_label": "positive", "label": "negative"}) >= 1
    assert r.get_sample_value("tone_shadow_dropped_total") == 1
