"""`tone stack` as a user runs it, and the broker's durable (S3-on-moto) storage mode."""

import json
import os
import subprocess
import sys
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from devstack.stack import LocalStack, _proc_start_time, port_open
from tests.conftest import stack_settings
from tone import envvars

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
        if not partitions:  # the topic is gone (a memory-storage broker restarted)
            return []
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        consumer.seek_to_beginning()
        return [r.value for r in consumer]
    finally:
        consumer.close()


def test_cli_up_status_down_leaves_nothing_running(tmp_path):
    s = stack_settings(tmp_path / "cli-stack")
    env = {
        **os.environ,
        envvars.STACK_DIR: str(s.stack_dir),
        envvars.STACK_KAFKA_PORT: str(s.stack_kafka_port),
        envvars.STACK_REDIS_PORT: str(s.stack_redis_port),
        envvars.STACK_MOTO_PORT: str(s.stack_moto_port),
    }
    local = LocalStack(s)
    try:
        up = tone("stack", "up", env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "created topics: tweets, tweets.dlq, tweets.scored" in up.stdout

        again = tone("stack", "up", env=env)  # idempotent: nothing new started
        assert again.returncode == 0
        assert again.stdout.count("already running") == 3

        status = tone("stack", "status", "--json", env=env)
        assert status.returncode == 0, status.stdout
        rows = json.loads(status.stdout)
        assert [r["state"] for r in rows] == ["running"] * 3
        pids = [r["pid"] for r in rows]
        assert all(_proc_start_time(p) is not None for p in pids)

        check = tone("stack", "check", "--messages", "50", env=env)
        assert check.returncode == 0, check.stderr
        assert "ok: 50 messages" in check.stdout

        exports = tone("stack", "env", env=env).stdout
        assert f"export {envvars.KAFKA_BOOTSTRAP_SERVERS}=127.0.0.1:{s.stack_kafka_port}" in exports

        down = tone("stack", "down", env=env)
        assert down.returncode == 0
        assert all(_proc_start_time(p) is None for p in pids)
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


def test_s3_storage_keeps_messages_across_a_broker_restart(tmp_path):
    s = stack_settings(tmp_path / "durable", stack_broker_storage="s3")
    local = LocalStack(s)
    topic = f"durable-{uuid.uuid4().hex[:8]}"
    values = [f"m{i}".encode() for i in range(500)]
    try:
        local.up()
        producer = KafkaProducer(bootstrap_servers=local.bootstrap, acks="all")
        for v in values:
            producer.send(topic, v)
        producer.flush()
        producer.close()

        old_pid = local.running_pid("kafka")
        local._stop("kafka")
        assert not port_open(s.stack_kafka_port)
        local.up()  # restarts only the broker; moto (holding the data) kept running
        assert local.running_pid("kafka") != old_pid

        assert sorted(read_all(local.bootstrap, topic)) == sorted(values)
    finally:
        local.down()


def test_memory_storage_loses_messages_on_restart(tmp_path):
    """The contrast that makes the durable test meaningful: the default mode keeps nothing."""
    s = stack_settings(tmp_path / "volatile")
    local = LocalStack(s)
    topic = f"volatile-{uuid.uuid4().hex[:8]}"
    try:
        local.up()
        producer = KafkaProducer(bootstrap_servers=local.bootstrap, acks="all")
        producer.send(topic, b"gone")
        producer.flush()
        producer.close()
        local._stop("kafka")
        local.up()
        assert read_all(local.bootstrap, topic) == []
    finally:
        local.down()
