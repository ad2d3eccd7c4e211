import json
import os
import subprocess
import sys
import uuid

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from tone import envvars

pytestmark = pytest.mark.integration


def test_tone_produce_sends_valid_tweets_keyed_by_user(settings, tmp_path):
    topic = f"produce-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_list)
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    admin.close()
    lines = [
        json.dumps(
            {"id": str(i), "user_id": f"user{i % 5}", "text": f"hello {i}", "created_at": "2026-01-01T00:00:00Z"}
        )
        for i in range(300)
    ]
    lines.insert(10, "not json")
    path = tmp_path / "tweets.jsonl"
    path.write_text("\n".join(lines) + "\n")
    env = {**os.environ, envvars.KAFKA_BOOTSTRAP_SERVERS: settings.kafka_bootstrap_servers}
    code = "import sys; from tone_cli.main import app; sys.argv = ['tone', *sys.argv[1:]]; app()"
    out = subprocess.run(
        [sys.executable, "-c", code, "produce", str(path), "--topic", topic],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "sent=300 valid=300 invalid=1 (invalid_json=1)" in out.stdout

    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_list, consumer_timeout_ms=2000)
    consumer.assign([TopicPartition(topic, p) for p in range(4)])
    consumer.seek_to_beginning()
    records = list(consumer)
    consumer.close()
    assert len(records) == 300
    by_user = {}
    for r in records:
        by_user.setdefault(r.key, set()).add(r.partition)
        assert json.loads(r.value)["user_id"].encode() == r.key
    assert all(len(p) == 1 for p in by_user.values())


def test_tone_produce_exits_non_zero_naming_what_the_broker_did_not_acknowledge(tmp_path):
    from tests.conftest import free_port

    lines = [
        json.dumps({"id": str(i), "user_id": "u", "text": f"hi {i}", "created_at": "2026-01-01T00:00:00Z"})
        for i in range(25)
    ]
    path = tmp_path / "tweets.jsonl"
    path.write_text("\n".join(lines) + "\n")
    env = {
        **os.environ,
        envvars.KAFKA_BOOTSTRAP_SERVERS: f"127.0.0.1:{free_port()}",  # nothing listens: a broker outage
        envvars.KAFKA_DELIVERY_TIMEOUT_S: "3",
    }
    code = "import sys; from tone_cli.main import app; sys.argv = ['tone', *sys.argv[1:]]; app()"
    out = subprocess.run(
        [sys.executable, "-c", code, "produce", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "25 of 25 messages were not acknowledged" in out.stderr
    assert "sent=" not in out.stdout  # never reported as sent
