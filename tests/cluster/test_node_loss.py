"""Node loss under a running stream, on the cluster stack (3 brokers, a Redis Cluster, Spark standalone with 2
workers): `tone stream` runs on the Spark cluster while tweets keep coming, one node is killed with kill -9, and
every user's count must equal what was sent (nothing lost, nothing doubled), with the stream never restarted by
hand; `tweets.scored` holds each tweet once for read_committed readers. A killed broker or Redis node is started
again afterwards, as an operator (or Kubernetes) would; the stream is not touched. Figures go to
reports/reliability.json (docs/scaling.md quotes a run).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
import uuid
from collections import Counter

import pytest

from tests.faults.test_faults import (
    SEED,
    Stream,
    as_pairs,
    assert_outputs_once,
    compare,
    counted,
    outputs_once,
    produce_in_background,
    read_topic,
    record,
    restarts_in,
    stream_lag,
    tweets,
    wait_until,
)
from tone import envvars
from tone.aggregates.factory import open_store
from tone.kafka.admin import admin_client
from tone.kafka.config import KafkaConnection

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


class ClusterStream(Stream):
    """`tone stream` on the cluster stack's Spark master and Redis Cluster."""

    def __init__(self, s, tmp, master: str) -> None:
        super().__init__(s, tmp, query=f"c{uuid.uuid4().hex[:6]}")
        self.master = master

    def env(self) -> dict[str, str]:
        # Batches of at most 1,000 tweets: many batches, so a kill lands among Kafka reads and Redis writes.
        extra = {envvars.SPARK_MASTER: self.master, envvars.REDIS_CLUSTER: "1", envvars.MAX_PER_TRIGGER: "1000"}
        return {**super().env(), **extra}


def copies_and_deletions(sent, rng: random.Random) -> tuple[list, list]:
    """Each tweet one to three times, shuffled (a re-run file, a rewound reader), then 300 of them deleted: the
    records to send, and the tweets that must count."""
    copies = [e for e in sent for _ in range(rng.randint(1, 3))]
    rng.shuffle(copies)
    deleted = rng.sample(sent, 300)
    controls = [
        (e.user_id.encode(), json.dumps({"delete": {"id": e.id, "user_id": e.user_id}}).encode()) for e in deleted
    ]
    gone = {e.id for e in deleted}
    return [*as_pairs(copies), *controls], [e for e in sent if e.id not in gone]


def run_with_a_kill(  # noqa: PLR0913 - the test's knobs
    cluster, s, tmp_path, name: str, kill, *, tweets_n: int = 8000, rate: float = 200, redelivered: bool = False
) -> dict:
    """Stream ``tweets_n`` tweets at ``rate``/s; call ``kill()`` a random moment after the first batch is counted.

    ``redelivered``: each tweet sent up to three times and some deleted after (:func:`copies_and_deletions`).
    """
    rng = random.Random(SEED + len(name))
    sent = tweets(tweets_n, users=1500, start=rng.randrange(1_000_000), prefix=name[0])
    pairs, kept = copies_and_deletions(sent, rng) if redelivered else (as_pairs(sent), sent)
    stream = ClusterStream(s, tmp_path, cluster.spark.master.address)
    stream.start(until_idle=None)
    try:
        producer = produce_in_background(s, pairs, rate)
        wait_until(lambda: counted(s, {e.user_id for e in sent[:300]}), 240, "the first batch")
        time.sleep(rng.uniform(2, 8))
        what = kill()
        producer.join(timeout=600)
        assert not producer.errors, producer.errors
        wait_until(lambda: compare(s, kept)["lost"] == 0, 400, "every tweet to be counted")
        wait_until(lambda: stream_lag(s, stream.query) == 0, 120, "the stream to report no lag")
        stream.interrupt()
        out = stream.wait(timeout=120)
    finally:
        if stream.proc is not None and stream.proc.poll() is None:
            stream.kill9()
    figures = compare(s, kept)
    if redelivered:  # a tweet deleted in the task that read it is never written: only doubles and the kept count
        written = Counter(json.loads(v)["id"] for v, _ in read_topic(s, s.kafka_topic_scored, "read_committed"))
        outputs = {
            "records": len(pairs),
            "scored_doubled": sum(n - 1 for n in written.values()),
            "scored_missing": len({e.id for e in kept} - set(written)),
        }
    else:
        outputs = outputs_once(s, sent, [])
    logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("stream-*.log"))
    record(
        f"cluster: {name}",
        killed=what,
        **figures,
        **outputs,
        failed_task_attempts=logs.count("Lost task"),
        store_retries=logs.count("slot parts to retry") + logs.count("Redis replicas of"),
        automatic_query_restarts=restarts_in(out),
        manual_restarts=0,
        summary=out.strip().splitlines()[-1],
    )
    if redelivered:
        assert (outputs["scored_doubled"], outputs["scored_missing"]) == (0, 0)
    else:
        assert_outputs_once(outputs)  # tweets.scored exactly once for read_committed readers, through the kill
    return figures


def test_kill_9_of_the_leader_of_a_tweets_partition(cluster, on_cluster, tmp_path):
    s = on_cluster

    def kill() -> str:
        metadata = admin_client(KafkaConnection.from_settings(s)).list_topics(s.kafka_topic_tweets, timeout=10)
        leader = metadata.topics[s.kafka_topic_tweets].partitions[0].leader
        node = f"kafka-{leader}"
        os.kill(cluster.running_pid(node), signal.SIGKILL)
        return f"{node} (leader of {s.kafka_topic_tweets}[0])"

    try:
        figures = run_with_a_kill(cluster, s, tmp_path, "kafka leader kill -9", kill)
    finally:
        cluster.up()  # the broker comes back for the next test
    assert (figures["lost"], figures["doubled"]) == (0, 0)


def test_kill_9_of_a_redis_master(cluster, on_cluster, tmp_path):
    s = on_cluster

    def kill() -> str:
        cluster.redis.refresh_roles()
        victim = next(n for n in cluster.redis.nodes if n.role == "master")
        t0 = time.monotonic()
        os.kill(cluster.running_pid(victim.name), signal.SIGKILL)
        cluster.redis.wait_failover(timeout=60)
        took = time.monotonic() - t0
        # With two replicas a master, the promoted replica keeps one to WAIT for (TONE_REDIS_WAIT_REPLICAS=1). The
        # node is started again here, as an operator would; the next test leaves one dead.
        time.sleep(10)
        cluster.up()
        return f"{victim.name} (a master; its replica served every slot again after {took:.1f} s)"

    figures = run_with_a_kill(cluster, s, tmp_path, "redis master kill -9", kill)
    assert (figures["lost"], figures["doubled"]) == (0, 0)


def test_tweets_redelivered_and_deleted_through_a_redis_master_kill_9(cluster, on_cluster, tmp_path):
    """The ids and kept contributions live in each user's slot: through a failover the counts are each user's
    distinct, undeleted tweets, and tweets.scored holds each tweet at most once."""
    s = on_cluster

    def kill() -> str:
        cluster.redis.refresh_roles()
        victim = next(n for n in cluster.redis.nodes if n.role == "master")
        os.kill(cluster.running_pid(victim.name), signal.SIGKILL)
        cluster.redis.wait_failover(timeout=60)
        time.sleep(10)
        cluster.up()
        return f"{victim.name} (a master)"

    figures = run_with_a_kill(
        cluster, s, tmp_path, "duplicates and deletions, redis master kill -9", kill, tweets_n=5000, rate=400,
        redelivered=True,
    )  # fmt: skip
    assert (figures["lost"], figures["doubled"]) == (0, 0)


def test_a_broker_and_the_seed_redis_master_killed_and_left_dead(cluster, on_cluster, tmp_path):
    """Nobody at the keyboard: a broker and the Redis master TONE_REDIS_URL names first die and stay dead while tweets
    flow. The query's restarts start their clients from the next seed node, and the dead master's shard keeps a
    replica to WAIT for (two replicas a master), so the counts come out exact with no restart by hand."""
    s = on_cluster
    first_seed = int(s.redis_url.split(",")[0].rsplit(":", 1)[1].split("/")[0])

    def kill() -> str:
        metadata = admin_client(KafkaConnection.from_settings(s)).list_topics(s.kafka_topic_tweets, timeout=10)
        broker = f"kafka-{metadata.topics[s.kafka_topic_tweets].partitions[0].leader}"
        cluster.redis.refresh_roles()
        masters = [n for n in cluster.redis.nodes if n.role == "master"]
        seed = next((n for n in masters if n.port == first_seed), masters[0])
        t0 = time.monotonic()
        os.kill(cluster.running_pid(broker), signal.SIGKILL)
        os.kill(cluster.running_pid(seed.name), signal.SIGKILL)
        cluster.redis.wait_failover(timeout=60)
        took = time.monotonic() - t0
        return f"{broker} and {seed.name} (a master; left dead, every slot served again after {took:.1f} s)"

    try:
        figures = run_with_a_kill(cluster, s, tmp_path, "broker and seed redis master kill -9, left dead", kill)
        assert open_store(s).user("nobody") is None  # a new client still starts, from the next seed node
    finally:
        cluster.up()  # back for the next test only
    assert (figures["lost"], figures["doubled"]) == (0, 0)


def executor_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "CoarseGrainedExecutorBackend"], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def test_kill_9_of_a_spark_executor_mid_batch(cluster, on_cluster, tmp_path):
    s = on_cluster

    def kill() -> str:
        pids = executor_pids()
        assert len(pids) == 2, pids  # one executor per worker
        victim = random.Random(SEED).choice(pids)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(executor_pids()) == 2 and victim not in executor_pids(), 120, "a new executor")
        return f"executor pid {victim} (the worker started a new one)"

    figures = run_with_a_kill(cluster, s, tmp_path, "spark executor kill -9", kill)
    assert (figures["lost"], figures["doubled"]) == (0, 0)
