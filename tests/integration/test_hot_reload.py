"""Hot reload: a running stream follows the registry's approved model, refuses a corrupt one, loses nothing."""

import json
import logging
from collections import Counter

import pytest

from streaming.job import ToneStream
from tests.helpers import tiny_rnn
from tests.integration.test_stream import events, produce, read_topic
from tone.aggregates.factory import open_store
from tone.registry import Registry

pytestmark = pytest.mark.integration


def publish(registry, tmp_path, name, seed):
    tiny_rnn(seed=seed).save(tmp_path / name, metrics={"test_macro_f1": 0.5 + seed / 100})
    return registry.publish(tmp_path / name, source={"backend": "test"}).version


def test_stream_swaps_to_the_approved_model_and_refuses_a_corrupt_one(spark, isolated, tmp_path, caplog):  # noqa: F811
    s = isolated.model_copy(
        update={
            "registry_uri": str(tmp_path / "registry"),
            "model_dir": tmp_path / "models",
            "model_refresh_s": 0.0,  # check before every micro-batch
            "approve_min_shadow": 0,  # this test is about the swap; the shadow gate has its own below
        }
    )
    registry = Registry.from_settings(s)
    a = publish(registry, tmp_path, "a", 1)
    registry.approve(a)
    job = ToneStream(s, scorer="registry", checkpoint=tmp_path / "ckpt", query_name="hot", trigger_seconds=0.3)
    assert job.config.scorer == f"registry:{a}"
    query = job.start(spark)
    try:
        first, second, third = events(0, 120), events(120, 120), events(240, 120)
        produce(s, first)
        query.processAllAvailable()

        b = publish(registry, tmp_path, "b", 2)
        registry.approve(b)
        produce(s, second)
        query.processAllAvailable()

        c = publish(registry, tmp_path, "c", 3)
        registry.approve(c)
        stored = tmp_path / "registry" / "versions" / c / "artifact" / "model.safetensors"
        stored.write_bytes(stored.read_bytes()[:-16] + b"\xff" * 16)  # corrupted after approval
        with caplog.at_level(logging.ERROR, logger="streaming.refresh"):
            produce(s, third)
            query.processAllAvailable()
    finally:
        query.stop()

    assert [(e.action, e.version) for e in job.refresher.events] == [("start", a), ("swap", b), ("refuse", c)]
    assert any(
        f"REFUSED version {c}" in r.getMessage() and "still scoring with" in r.getMessage() for r in caplog.records
    )
    assert job.config.scorer == f"registry:{b}"

    rows = [json.loads(r.value) for r in read_topic(s, s.kafka_topic_scored)]
    ids = Counter(row["id"] for row in rows)
    assert len(rows) == 360  # nothing lost, nothing doubled (no task failed here, so no at-least-once resend)
    assert set(ids.values()) == {1}
    scored = {row["id"]: row["model_version"] for row in rows}
    assert {scored[e.id] for e in first} == {a}
    assert {scored[e.id] for e in second} == {b}
    assert {scored[e.id] for e in third} == {b}  # the corrupt version never scored a tweet

    store = open_store(s)
    expected = Counter(e.user_id for e in first + second + third)
    assert {u: store.user(u)["n"] for u in expected} == dict(expected)


def scored_flips(s):
    """The flip matrix a read_committed consumer of the scored topic computes: {live: {candidate: n}}."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=s.bootstrap_list, consumer_timeout_ms=2000, isolation_level="read_committed"
    )
    consumer.assign(
        [TopicPartition(s.kafka_topic_scored, p) for p in consumer.partitions_for_topic(s.kafka_topic_scored)]
    )
    consumer.seek_to_beginning()
    rows = [json.loads(r.value) for r in consumer]
    consumer.close()
    matrix: dict[str, Counter] = {}
    for row in rows:
        if row.get("shadow"):
            matrix.setdefault(row["label"], Counter())[row["shadow"]["label"]] += 1
    return {k: dict(v) for k, v in matrix.items()}, rows


def test_a_candidate_earns_its_place_in_shadow_then_goes_live_and_rolls_back(spark, registry_settings, tmp_path):
    """Publish, shadow, approve with evidence, hot reload and rollback in a running stream, on each registry."""
    from typer.testing import CliRunner

    from tone.registry import RegistryError
    from tone.settings import env_name
    from tone_cli.main import app

    s = registry_settings.model_copy(
        update={
            "model_refresh_s": 0.0,
            "output_guarantee": "exactly_once",
            "approve_min_shadow": 100,
            "approve_max_churn": 1.0,
        }
    )
    registry = Registry.from_settings(s)
    a = publish(registry, tmp_path, "a", 1)
    with pytest.raises(RegistryError, match="0 tweets of shadow evidence, at least 100 needed.*tone models shadow"):
        registry.approve(a)
    assert "forced" in registry.approve(a, force=True, reason="the first model: nothing to compare with")
    b = publish(registry, tmp_path, "b", 2)
    registry.set_shadow(b)
    job = ToneStream(s, scorer="registry", checkpoint=tmp_path / "ckpt", query_name="shadowed", trigger_seconds=0.3)
    assert (job.config.scorer, job.config.shadow) == (f"registry:{a}", f"registry:{b}")
    fields = ("redis_url", "redis_key_prefix", "registry_uri", "model_dir", "aws_endpoint_url", "sagemaker_bucket",
              "mlflow_tracking_uri")  # fmt: skip
    env = {env_name(k): str(getattr(s, k)) for k in fields if getattr(s, k) is not None}
    env |= {"TONE_APPROVE_MIN_SHADOW": "100", "TONE_APPROVE_MAX_CHURN": "1"}
    runner = CliRunner()
    query = job.start(spark)
    try:
        produce(s, events(0, 60))
        query.processAllAvailable()
        refused = runner.invoke(app, ["models", "approve", b, "--query", "shadowed"], env=env)
        assert refused.exit_code != 0 and "at least 100 needed" in " ".join(refused.output.split()), refused.output
        produce(s, events(60, 200))
        query.processAllAvailable()

        flips, rows = scored_flips(s)
        compared = runner.invoke(app, ["models", "compare", "--query", "shadowed", "--json"], env=env)
        assert compared.exit_code == 0, compared.output
        evidence = json.loads(compared.output)
        assert (evidence["live"], evidence["candidate"]) == (a, b)
        assert evidence["flips"] == flips  # counted in Redis exactly as a read_committed reader of the topic sees it
        assert evidence["n"] == sum(bool(r.get("shadow")) for r in rows) == sum(r["label"] is not None for r in rows)
        assert evidence["n"] >= 100

        approved = runner.invoke(app, ["models", "approve", b, "--query", "shadowed"], env=env)
        assert approved.exit_code == 0, approved.output
        assert f"shadow: {evidence['n']} tweets against {a}" in " ".join(approved.output.split())
        (event,) = [e for e in registry.events() if e["action"] == "approve" and e["version"] == b]
        assert event["shadow"]["n"] == evidence["n"] and event["shadow"]["flips"] == flips
        produce(s, events(260, 40))
        query.processAllAvailable()
        assert (job.config.scorer, job.config.shadow) == (f"registry:{b}", "")  # live now; nothing in shadow
        registry.rollback()
        produce(s, events(300, 40))
        query.processAllAvailable()
    finally:
        query.stop()
    assert job.config.scorer == f"registry:{a}"
    _, rows = scored_flips(s)
    by_id = {r["id"]: r for r in rows}
    assert len(rows) == len(by_id) == 340
    scored = [by_id[f"t{i}"] for i in range(340) if by_id[f"t{i}"]["label"] is not None]
    assert {r["model_version"] for r in scored[-5:]} == {a}
    assert all(r.get("shadow") is None for r in rows if r["model_version"] == b)
