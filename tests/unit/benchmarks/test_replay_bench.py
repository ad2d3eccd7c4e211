"""The replay bench's bookkeeping: batches counted once whatever Spark re-runs, guarantees compared by medians."""

import itertools
from types import SimpleNamespace

from benchmarks.replay import batches_by_id
from tone_cli import bench


def report(batch_id, records):
    return SimpleNamespace(batch_id=batch_id, records=records)


def test_a_batch_re_run_after_the_backlog_restart_keeps_the_records_of_its_first_run():
    # Batch 7 ran (250 records), the query stopped before Spark's commit, and its re-run found them counted.
    reports = [report(6, 1000), report(7, 250), report(7, 0), report(8, 25000)]
    assert sum(r.records for r in batches_by_id(reports).values()) == 26250


def test_a_batch_first_stopped_before_its_report_counts_its_re_run():
    assert batches_by_id([report(3, 0), report(3, 120)])[3].records == 120


def row(guarantee, rate, p95, limit=25000):
    return {
        "pipeline": "tone",
        "guarantee": guarantee,
        "tweets_per_s": rate,
        "latency_s": {"p95": p95},
        "max_per_trigger": limit,
    }


def test_repeated_guarantees_are_compared_by_their_medians(capsys):
    rows = [
        row("exactly_once", 900, 1.2),
        row("at_least_once", 1000, 1.0),
        row("at_least_once", 400, 9.0),
        row("exactly_once", 1000, 1.1),
        row("exactly_once", 950, 1.3),
    ]
    bench._print_overhead(rows)
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    # medians: EO 950 tweets/s, p95 1.2; ALO 700, p95 5.0
    assert "max 25000/batch, medians of 3 and 2 runs): 1.36x tweets/s, 0.24x p95" in out


def test_one_run_each_is_a_plain_ratio(capsys):
    bench._print_overhead([row("exactly_once", 900, 1.5), row("at_least_once", 1000, 1.0)])
    out = " ".join(capsys.readouterr().out.split())
    assert "exactly_once vs at_least_once (max 25000/batch): 0.90x tweets/s, 1.50x p95" in out


def test_the_scorer_alone_is_timed_on_the_replays_distinct_tweets(monkeypatch):
    import benchmarks.scorers
    from benchmarks import replay
    from tone.settings import Settings

    asked = []

    def texts(settings, n):
        asked.append(n)
        return ["good day", "awful day", "a day"] * (n // 3 + 1)

    monkeypatch.setattr(benchmarks.scorers, "bench_texts", texts)
    alone = replay.scorer_alone(Settings(), "vader", say=lambda _: None)
    assert asked == [replay.REPLAY_TEXTS]
    assert alone["tweets"] == replay.REPLAY_TEXTS and alone["version"] == "vader-3.3.2"
    assert alone["tweets_per_s"] > 0 and alone["threads"] >= 1


def test_each_stream_row_is_reported_as_a_share_of_the_scorer_alone(monkeypatch):
    from typer.testing import CliRunner

    from benchmarks import replay
    from tone_cli.main import app

    rates = itertools.cycle([3000.0, 4500.0])
    monkeypatch.setattr(
        replay,
        "run_replay_bench",
        lambda settings, **kw: {
            **row(kw["guarantee"], next(rates), 1.0),
            "pipeline": replay.TONE,
            "source": "python",
            "scorer": kw["scorer"],
            "tweets": kw["tweets"],
            "rate": None,
            "wall_s": 1.0,
            "batches": 1,
            "latency_s": {"p50": 0.5, "p95": 1.0, "p99": 1.2},
            "stage_task_s": {"parse_s": 0.1},
            "batch_wall_s": 1.0,
        },
    )
    alone = {"tweets": 4200, "threads": 2, "version": "vader-3.3.2", "tweets_per_s": 6000.0}
    monkeypatch.setattr(replay, "scorer_alone", lambda settings, scorer, say: alone)
    result = CliRunner().invoke(app, ["bench", "replay", "--scorer", "vader", "--no-reference", "--json"])
    assert result.exit_code == 0, result.output
    import json

    rows = json.loads(result.output)
    assert [r["vs_scorer"] for r in rows] == [0.5, 0.75]
    plain = CliRunner().invoke(app, ["bench", "replay", "--scorer", "vader", "--no-reference"])
    assert "the tone stream reaches 0.50, 0.75 of it" in " ".join(plain.output.split())


def test_spark_phases_are_medians_over_the_measured_batches_only():
    from benchmarks.replay import spark_phases

    # recentProgress's StreamingQueryProgress is a dict of the progress JSON
    progress = [
        {"batchId": 0, "durationMs": {"triggerExecution": 5000, "addBatch": 4000, "walCommit": 900}},  # warm-up
        {"batchId": 1, "durationMs": {"triggerExecution": 1000, "addBatch": 700, "walCommit": 30}},
        {"batchId": 2, "durationMs": {"triggerExecution": 1200, "addBatch": 800, "walCommit": 50}},
        {"batchId": 3, "durationMs": {"triggerExecution": 900, "addBatch": 500, "walCommit": 40}},
        {"batchId": 4, "durationMs": {}},  # no data in that trigger
    ]
    phases = spark_phases(progress, {1, 2, 3, 4})
    assert phases == {"addBatch": 700.0, "outside_addBatch": 400.0, "triggerExecution": 1000.0, "walCommit": 40.0}
    assert spark_phases(progress, set()) == {}


def test_the_replay_line_shows_sparks_phases_when_there_are_any():
    from tone_cli.bench import _spark_line

    line = _spark_line({"triggerExecution": 1000.0, "addBatch": 700.0, "outside_addBatch": 300.0, "walCommit": 40.0})
    assert line == "Spark per batch, median ms: whole batch 1000, outside foreachBatch 300; walCommit 40, addBatch 700"
