"""`tone stack` as a user runs it, and Apache Kafka's durability across restarts."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from kafka import KafkaConsumer, TopicPartition

from devstack.process import port_open, proc_start_time
from devstack.stack import LocalStack
from tests.conftest import stack_settings
from tone import envvars
from tone.jars import KAFKA_VERSION
from tone.kafka.clients import open_producer
from tone.kafka.config import KafkaConnection

pytestmark = pytest.mark.integration


def tone(*args, env):
    code = "import sys; from tone_cli.main import app; sys.argv = ['tone', *sys.argv[1:]]; app()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False, timeout=120
    )


def read_all(bootstrap, topic):
    """Every value on every partition of ``topic`` (auto-created topics have several partitions)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=2000)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        consumer.seek_to_beginning()
        return [r.value for r in consumer]
    finally:
        consumer.close()


# A transactional producer as the stream's exactly-once outputs make one (librdkafka logs to the process's stderr).
INIT_TRANSACTIONS = """
import sys
from confluent_kafka import Producer
producer = Producer({"bootstrap.servers": sys.argv[1], "transactional.id": "stack-test"})
producer.init_transactions(60)
"""


def test_cli_up_status_down_leaves_nothing_running(tmp_path):
    s = stack_settings(tmp_path / "cli-stack")
    env = {
        **os.environ,
        envvars.STACK_DIR: str(s.stack_dir),
        envvars.STACK_KAFKA_PORT: str(s.stack_kafka_port),
        envvars.STACK_KAFKA_CONTROLLER_PORT: str(s.stack_kafka_controller_port),
        envvars.STACK_REDIS_PORT: str(s.stack_redis_port),
        envvars.STACK_MOTO_PORT: str(s.stack_moto_port),
    }
    local = LocalStack(s)
    try:
        up = tone("stack", "up", env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "created topics: tweets, tweets.dlq, tweets.scored" in up.stdout
        # Ready means ready: the first producers after it get their producer ids at once, with no librdkafka
        # warnings ("Failed to acquire idempotence PID ...: Coordinator load in progress", 57 lines in a demo).
        env[envvars.KAFKA_BOOTSTRAP_SERVERS] = f"127.0.0.1:{s.stack_kafka_port}"
        produced = tone("produce", "--synthetic", "50", "--users", "5", env=env)
        assert produced.returncode == 0, produced.stderr
        transactional = subprocess.run(
            [sys.executable, "-c", INIT_TRANSACTIONS, f"127.0.0.1:{s.stack_kafka_port}"],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        for output in (up.stdout + up.stderr, produced.stderr, transactional.stderr):
            assert "GETPID" not in output and "load in progress" not in output, output[-2000:]

        again = tone("stack", "up", env=env)  # idempotent: nothing new started
        assert again.returncode == 0
        assert again.stdout.count("already running") == 3

        status = tone("stack", "status", "--json", env=env)
        assert status.returncode == 0, status.stdout
        rows = json.loads(status.stdout)
        assert [r["state"] for r in rows] == ["running"] * 3
        assert rows[2]["software"].startswith(f"Apache Kafka {KAFKA_VERSION}")
        pids = [r["pid"] for r in rows]
        assert all(proc_start_time(p) is not None for p in pids)

        check = tone("stack", "check", "--messages", "50", env=env)
        assert check.returncode == 0, check.stderr
        assert "ok: 50 messages" in check.stdout

        exports = tone("stack", "env", env=env).stdout
        assert f"export {envvars.KAFKA_BOOTSTRAP_SERVERS}=127.0.0.1:{s.stack_kafka_port}" in exports

        down = tone("stack", "down", env=env)
        assert down.returncode == 0
        assert all(proc_start_time(p) is None for p in pids)
        assert not any(port_open(p) for p in (s.stack_kafka_port, s.stack_redis_port, s.stack_moto_port))
        assert not list(s.stack_dir.glob("*.pid"))

        after = tone("stack", "status", env=env)
        assert after.returncode == 1
        assert "stopped" in after.stdout
        assert "nothing was running" in tone("stack", "down", env=env).stdout
    finally:
        local.down()


def test_down_never_kills_a_process_it_did_not_start(tmp_path):
    s = stack_settings(tmp_path / "foreign")
    s.stack_dir.mkdir(parents=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # A PID file naming a live process whose start time does not match: a recycled PID, not ours.
        (s.stack_dir / "redis.pid").write_text(json.dumps({"pid": bystander.pid, "start_time": 1}))
        assert LocalStack(s).down() == []
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_port_taken_by_a_foreign_process_is_a_clear_error(tmp_path, stack):
    from tone.errors import StackError

    s = stack_settings(tmp_path / "clash")
    clash = s.model_copy(update={"stack_redis_port": stack.ports["redis"]})
    local = LocalStack(clash)
    try:
        with pytest.raises(StackError, match=envvars.STACK_REDIS_PORT):
            local.up()
    finally:
        local.down()


def _produce_acked(bootstrap, topic, values):
    """Send and wait for every acknowledgement (flush raises if the broker did not take them all)."""
    producer = open_producer(KafkaConnection((bootstrap,)))
    for v in values:
        producer.send(topic, key=v[-1:], value=v)
    producer.flush()
    return producer.stats.acked


def test_a_broker_kill_9_loses_no_acknowledged_message(tmp_path):
    s = stack_settings(tmp_path / "kill9")
    local = LocalStack(s)
    topic = f"durable-{uuid.uuid4().hex[:8]}"
    first = [f"m{i}".encode() for i in range(5000)]
    second = [f"n{i}".encode() for i in range(500)]
    try:
        local.up()
        assert _produce_acked(local.bootstrap, topic, first) == 5000
        old_pid = local.running_pid("kafka")
        os.kill(old_pid, signal.SIGKILL)  # no clean shutdown: the log is recovered on restart
        deadline = time.monotonic() + 10
        while proc_start_time(old_pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        local.up()  # restarts only the broker
        assert local.running_pid("kafka") not in (None, old_pid)
        assert _produce_acked(local.bootstrap, topic, second) == 500
        assert sorted(read_all(local.bootstrap, topic)) == sorted(first + second)
    finally:
        local.down()


def test_topics_and_messages_survive_down_and_up(tmp_path):
    s = stack_settings(tmp_path / "downup")
    local = LocalStack(s)
    topic = f"kept-{uuid.uuid4().hex[:8]}"
    try:
        local.up()
        _produce_acked(local.bootstrap, topic, [b"kept"])
        local.down()
        logs = []
        local.up(log=logs.append)
        assert not any("created topics" in line for line in logs)  # the project's topics were still there
        assert read_all(local.bootstrap, topic) == [b"kept"]
        kafka = next(r for r in local.status() if r.name == "kafka")
        assert (kafka.state, kafka.software) == ("running", f"Apache Kafka {KAFKA_VERSION} (KRaft, broker+controller)")
    finally:
        local.down()
