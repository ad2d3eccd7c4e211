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


def jetstream_events(n):
    """n Jetstream messages a second apart: posts of five users, a deletion every 10th, one account deleted."""
    out = []
    for i in range(n):
        did = f"did:plc:user{i % 5}"
        commit = {"rev": "r", "operation": "create", "collection": "app.bsky.feed.post", "rkey": f"k{i}", "cid": "c",
                  "record": {"createdAt": "2026-11-23T10:00:00Z", "langs": ["en"], "text": f"post {i}"}}  # fmt: skip
        if i % 10 == 9:  # the author of post i - 1 deletes it
            did = f"did:plc:user{(i - 1) % 5}"
            commit = {"rev": "r", "operation": "delete", "collection": "app.bsky.feed.post", "rkey": f"k{i - 1}"}
        message = {"did": did, "time_us": 1_000_000 * (i + 1), "kind": "commit", "commit": commit}
        if i == n // 2:
            message = {"did": "did:plc:user4", "time_us": 1_000_000 * (i + 1), "kind": "account",
                       "account": {"active": False, "did": "did:plc:user4", "seq": 1, "status": "deleted"}}  # fmt: skip
        out.append(message)
    return out


def test_a_restarted_jetstream_reader_resumes_from_the_topic_and_loses_nothing(settings):
    """kill -9 of `tone produce --live bluesky` at a random moment, then a restart: every event the server sent is
    in the topic (some twice: the rewind), the restart asked for the newest cursor written less the rewind."""
    import random
    import signal
    import threading
    import time
    from urllib.parse import parse_qs, urlparse

    from websockets.sync.server import serve

    from producer.live import CURSOR_HEADER

    events = jetstream_events(120)
    cursors = []
    done = threading.Event()

    def handler(ws):
        query = parse_qs(urlparse(ws.request.path).query)
        cursor = int(query["cursor"][0]) if "cursor" in query else None
        cursors.append(cursor)
        for message in events:
            if cursor is None or message["time_us"] >= cursor:
                ws.send(json.dumps(message))
                time.sleep(0.05)
        done.wait(60)  # a live feed: nothing new for now, the connection stays open

    topic = f"jet-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_list)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    admin.close()

    def count():
        consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_list)
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(3)])
        consumer.close()
        return sum(ends.values())

    def written():
        consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_list, consumer_timeout_ms=1500)
        consumer.assign([TopicPartition(topic, p) for p in range(3)])
        consumer.seek_to_beginning()
        records = list(consumer)
        consumer.close()
        return records

    env = {**os.environ, envvars.KAFKA_BOOTSTRAP_SERVERS: settings.kafka_bootstrap_servers,
           envvars.JETSTREAM_REWIND_S: "5"}  # fmt: skip
    code = "import sys; from tone_cli.main import app; sys.argv = ['tone', *sys.argv[1:]]; app()"
    with serve(handler, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        args = [sys.executable, "-c", code, "produce", "--live", "bluesky", "--live-url", url, "--topic", topic]
        first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while count() < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(random.uniform(0, 0.5))
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        before = written()
        newest = max(int(dict(r.headers)[CURSOR_HEADER]) for r in before)
        assert 20 <= len(before) < len(events)

        second = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                after = written()
                if {int(dict(r.headers)[CURSOR_HEADER]) for r in after} >= {m["time_us"] for m in events}:
                    break
                time.sleep(0.3)
        finally:
            second.send_signal(signal.SIGKILL)
            _, err = second.communicate(timeout=30)
        done.set()
        server.shutdown()
    assert cursors[0] is None and cursors[1] == newest - 5_000_000, (cursors, newest, err)
    assert f"resuming at cursor {newest - 5_000_000}".encode() in err
    seen = {int(dict(r.headers)[CURSOR_HEADER]) for r in after}
    assert seen == {m["time_us"] for m in events}  # nothing lost across the kill
    assert len(after) > len(events)  # the rewind sent some twice: the stream's dedupe leaves them out
    values = [json.loads(r.value) for r in after]
    assert {"forget": {"user_id": "did:plc:user4"}} in values
    assert {"delete": {"id": "did:plc:user3:k8", "user_id": "did:plc:user3"}} in values
    assert all(
        r.key == (v.get("user_id") or next(iter(v.values()))["user_id"]).encode()
        for r, v in zip(after, values, strict=True)
    )
