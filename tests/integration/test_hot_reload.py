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
