"""What the stream publishes (Prometheus metrics, consumer-group lag, a health record) and what the API serves."""

import re
import subprocess
import urllib.request

import pytest
from fastapi.testclient import TestClient

from serving.api import create_app
from serving.lookup import stream_health
from streaming.job import ToneStream
from streaming.monitor import open_monitor
from tests.conftest import free_port
from tests.helpers import tiny_rnn
from tests.integration.test_stream import INVALID, events, produce
from tone.aggregates.factory import open_store
from tone.jars import cached_jars, kafka_broker

pytestmark = pytest.mark.integration


def scrape(port: int) -> dict[str, float]:
    """The metrics page as {'name{labels}': value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:  # noqa: S310
        text = resp.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def consumer_group_lag(settings, group: str) -> dict[int, int]:
    """Lag per partition as Kafka's own kafka-consumer-groups tool reports it."""
    classpath = ":".join(str(p) for p in cached_jars(settings.jars_dir, kafka_broker()))
    out = subprocess.run(
        ["java", "-cp", classpath, "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"]
        + ["--bootstrap-server", settings.kafka_bootstrap_servers, "--describe", "--group", group],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    lags = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[1] == settings.kafka_topic_tweets and cols[2].isdigit():
            lags[int(cols[2])] = int(cols[5])
    return lags


def test_the_stream_publishes_metrics_lag_and_health(spark, isolated, tmp_path):
    port = free_port()
    model = tmp_path / "model"
    tiny_rnn().save(model, data={"train_label_counts": {"negative": 25, "neutral": 25, "positive": 50}})
    s = isolated.model_copy(update={"metrics_port": port, "drift_sample": 0.2})
    evs = events(0, 300)
    produce(s, evs, INVALID)
    job = ToneStream(s, scorer=str(model), checkpoint=tmp_path / "ckpt", query_name="obs", trigger_seconds=0.5)
    job.monitor = open_monitor(job)
    query = job.start(spark)
    try:
        query.processAllAvailable()
    finally:
        query.stop()
        job.monitor.close()

    m = scrape(port)
    assert m['tone_stream_records_total{outcome="valid"}'] == 300
    assert m['tone_stream_records_total{outcome="invalid"}'] == len(INVALID)
    assert m['tone_stream_dead_letters_total{reason="invalid_json"}'] == 1
    assert m["tone_stream_batches_total"] >= 1
    assert m["tone_stream_latency_seconds_count"] > 0
    lags = {k: v for k, v in m.items() if k.startswith("tone_stream_lag_records")}
    assert len(lags) == 4 and set(lags.values()) == {0.0}
    assert any(k.startswith("tone_model_info{") and "rnn-" in k for k in m)
    assert m['tone_drift_training_label_share{label="positive"}'] == 0.5
    assert "tone_drift_distance" in m and "tone_drift_vader_disagreement_ratio" in m

    health = stream_health(open_store(s), "obs", now=0)
    assert (health["records"], health["invalid"], health["lag_total"]) == (305, len(INVALID), 0)
    assert health["dead_letters"]["invalid_json"] == 1
    assert health["drift"]["sampled"] > 0
    assert set(health["drift"]["training_share"]) == {"negative", "neutral", "positive"}

    # Kafka's own tool sees the stream's consumer group: caught up, then 50 behind once more arrive unread
    assert consumer_group_lag(s, "tone-stream.obs") == dict.fromkeys(range(4), 0)
    produce(s, events(1000, 50))
    assert sum(consumer_group_lag(s, "tone-stream.obs").values()) == 50


def test_the_api_serves_the_dashboard_metrics_hourly_and_health(isolated):
    s = isolated
    from tone.aggregates.deltas import Scored, batch_deltas

    t0 = 1_795_428_780  # 2026-11-23 10:13 UTC
    tweets = [
        Scored(
            "ana",
            f"a{i}",
            t0 + 3600 * (i % 3),
            "negative" if i % 2 else "positive",
            {"negative": 0.5, "positive": 0.5},
            0.0,
        )
        for i in range(6)
    ]
    store = open_store(s)
    store.apply_range("q", "t", 0, 0, 5, batch_deltas(tweets, 3600, 5))
    store.write_health(
        "tone",
        {
            "records": "6",
            "invalid": "0",
            "batches": "1",
            "restarts": "0",
            "rate": "12.5",
            "last_batch_at": "1.0",
            "updated_at": "1.0",
            "lag": '{"0": 3}',
            "dead_letters": "{}",
            "model_version": "vader-3.3.2",
            "drift": "{}",
        },
    )
    client = TestClient(create_app(s))
    page = client.get("/")
    assert page.status_code == 200
    assert 'data-testid="chart"' in page.text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page.text)  # nothing from the internet
    hourly = client.get("/users/ana/hourly", params={"hours": 4}).json()["hours"]
    assert [h["hour"] for h in hourly] == ["2026112309", "2026112310", "2026112311", "2026112312"]
    assert sum(sum(h["counts"].values()) for h in hourly) == 6
    assert client.get("/users/nobody/hourly").status_code == 404
    health = client.get("/stream/health").json()
    assert (health["lag_total"], health["rate"], health["model_version"]) == (3, 12.5, "vader-3.3.2")
    assert client.get("/stream/health", params={"query": "other"}).status_code == 404
    metrics = client.get("/metrics").text
    assert re.search(
        r'tone_api_requests_total\{method="GET",route="/users/\{user_id:path\}/hourly",status="200"\} 1\.0', metrics
    )
    assert "tone_api_request_duration_seconds_bucket" in metrics
