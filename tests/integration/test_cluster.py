"""The stream on a Spark standalone cluster, submitted the way a cluster user would (README: "On a Spark cluster").

A master and a worker run on loopback from pyspark's own launcher classes; the job is submitted with
``spark-submit`` (client mode), the project's code shipped as a zip with ``--py-files``, Spark's Kafka connector with
``--jars``, and this virtualenv as the worker's installed Python environment.
"""

import json
import os
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pyspark
import pytest

from tests.conftest import free_port, free_ports
from tests.helpers import REPO_ROOT, settings_env
from tests.integration.test_stream import INVALID, events, expected_counts, produce, redis_counts
from tone import envvars
from tone.aggregates.factory import open_store
from tone.jars import cached_jars, spark_kafka_connector
from tone.kafka.config import KafkaConnection
from tone.kafka.readers import open_reader

pytestmark = pytest.mark.integration

SPARK_HOME = Path(pyspark.__file__).parent


def _wait_for_worker(ui_port, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as resp:  # noqa: S310
                if json.load(resp).get("aliveworkers", 0) >= 1:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("the standalone worker never registered with the master")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A standalone master and one 2-core worker on loopback; yields the master URL."""
    work = tmp_path_factory.mktemp("spark-cluster")
    port, ui, worker_ui = free_ports(3)
    env = {
        **os.environ,
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOG_DIR": str(work / "logs"),
    }
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    master_cmd = [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
    master_cmd += ["--port", str(port), "--webui-port", str(ui)]
    worker_cmd = [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "2"]
    worker_cmd += ["--memory", "2g", "--webui-port", str(worker_ui), "--work-dir", str(work / "work")]
    worker_cmd.append(f"spark://127.0.0.1:{port}")
    procs = []
    try:
        with (work / "master.log").open("wb") as master_log, (work / "worker.log").open("wb") as worker_log:
            procs.append(subprocess.Popen(master_cmd, env=env, stdout=master_log, stderr=subprocess.STDOUT))
            procs.append(subprocess.Popen(worker_cmd, env=env, stdout=worker_log, stderr=subprocess.STDOUT))
        _wait_for_worker(ui)
        yield f"spark://127.0.0.1:{port}"
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def group_offsets(s, group: str) -> dict[int, int]:
    """The offsets ``group`` committed on the tweets topic, by partition."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(KafkaConnection.from_settings(s).librdkafka() | {"group.id": group})
    try:
        parts = [TopicPartition(s.kafka_topic_tweets, p) for p in range(4)]
        return {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
    finally:
        consumer.close()


def _job_zip(target: Path) -> Path:
    """The job's code as a cluster user ships it: the kernel and the streaming stage, as one zip."""
    with zipfile.ZipFile(target, "w") as zf:
        for package in ("tone", "streaming"):
            for path in sorted((REPO_ROOT / package).rglob("*.py")):
                zf.write(path, path.relative_to(REPO_ROOT).as_posix())
    return target


@pytest.mark.parametrize("source", ["native", "python"])
def test_the_stream_on_a_standalone_cluster_counts_every_user_exactly(cluster, isolated, tmp_path, settings, source):
    s = isolated
    evs = events(0, 1000, users=37)
    produce(s, evs, INVALID)
    metrics_port = free_port()
    env = settings_env(s, SPARK_HOME=str(SPARK_HOME), SPARK_LOCAL_IP="127.0.0.1") | {
        envvars.METRICS_PORT: str(metrics_port),
        envvars.SCORER: "vader",
        envvars.TRIGGER_SECONDS: "1",
        envvars.CHECKPOINT_DIR: str(tmp_path / "checkpoints"),
    }
    jars = ",".join(str(p) for p in cached_jars(settings.jars_dir, spark_kafka_connector()))
    cmd = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", cluster, "--deploy-mode", "client"]
    cmd += ["--conf", "spark.driver.host=127.0.0.1", "--conf", f"spark.pyspark.python={sys.executable}"]
    cmd += ["--conf", "spark.executor.memory=1g", "--jars", jars]
    cmd += ["--py-files", str(_job_zip(tmp_path / "tone-job.zip"))]
    cmd += [str(REPO_ROOT / "streaming" / "submit.py"), "--source", source, "--until-idle", "6"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=400, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert f"records={len(evs) + len(INVALID)} invalid={len(INVALID)}" in out.stdout
    assert redis_counts(s, {e.user_id for e in evs}) == expected_counts(evs)
    # The driver did what `tone stream`'s does: metrics served, the health record written, the lag group committed.
    assert f"metrics http://127.0.0.1:{metrics_port}/metrics" in out.stdout
    health = open_store(s).health("tone")
    assert health is not None and json.loads(health["lag"]) == dict.fromkeys(["0", "1", "2", "3"], 0)
    committed = group_offsets(s, f"{s.kafka_group_prefix}tone")
    ends = open_reader(KafkaConnection.from_settings(s)).end_offsets(s.kafka_topic_tweets, [0, 1, 2, 3])
    assert committed == ends
