"""The fault suite (`make test-faults`): real faults against the real stack, counts checked to the tweet.

Each test runs `tone stream` as a user would (its own process group: the CLI, the Spark driver JVM and the Python
workers), injects faults, and checks that every user's count in Redis equals what was sent to Kafka (nothing lost,
nothing doubled) and that the dead-letter topic holds exactly the bad messages, each with a reason. The figures go
to reports/reliability.json; docs/reliability.md quotes a run.

Fault timing comes from a seeded RNG (TONE_FAULT_SEED, default 11), outages last TONE_FAULT_OUTAGE_S (default 60).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from producer.kafka_writer import TweetWriter
from tests.helpers import REPO_ROOT, settings_env
from tone import envvars
from tone.aggregates.factory import open_store
from tone.events import REASONS, TweetEvent, parse_event
from tone.kafka.config import KafkaConnection

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

SEED = int(os.environ.get("TONE_FAULT_SEED", "11"))
OUTAGE_S = float(os.environ.get("TONE_FAULT_OUTAGE_S", "60"))
REPORT = REPO_ROOT / "reports" / "reliability.json"
TEXTS = ["I love this", "This is awful", "Meeting at 3pm", "Best day ever", "So sad today", "Nice work team"]


def record(name: str, **figures: object) -> None:
    """Add one fault's figures to the report (and print them: pytest -s shows them)."""
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    report = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    report[name] = figures | {"seed": SEED, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n[fault] {name}: {json.dumps(figures)}")


def tweets(n: int, users: int, start: int = 0, prefix: str = "u") -> list[TweetEvent]:
    t0 = datetime(2026, 11, 23, tzinfo=UTC)
    rng = random.Random(SEED + start)
    # Zipf-like: a few heavy users, a long tail
    weights = [1 / (i + 1) for i in range(users)]
    picks = rng.choices(range(users), weights=weights, k=n)
    return [
        TweetEvent(f"t{start + i}", f"{prefix}{u:05d}", TEXTS[i % len(TEXTS)], t0 + timedelta(seconds=i))
        for i, u in enumerate(picks)
    ]


def produce(s, values: list[tuple[bytes | None, bytes | None]], rate: float | None = None) -> None:
    """Send (key, value) pairs, paced at ``rate``/s; raises if the broker did not acknowledge every one.

    The delivery timeout is 10 minutes: this producer rides out the broker outages the tests inject (what it sends
    during one is acknowledged after the restart), so every tweet it sent reached Kafka.
    """
    with TweetWriter(s, **{"delivery.timeout.ms": 600_000}) as writer:
        t0 = time.monotonic()
        for i, (key, value) in enumerate(values):
            if rate:
                ahead = t0 + i / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            writer.send_raw(key, value)


def in_background(work, *args) -> threading.Thread:
    """Run ``work(*args)`` in a daemon thread; what it raised is in the thread's ``errors``."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work(*args)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def produce_in_background(s, values, rate) -> threading.Thread:
    return in_background(produce, s, values, rate)


def as_pairs(events: list[TweetEvent]) -> list[tuple[bytes | None, bytes]]:
    return [(e.user_id.encode(), e.to_json()) for e in events]


class Stream:
    """`tone stream` in its own process group, so a kill -9 takes the driver JVM and the Python workers with it."""

    def __init__(
        self, s, tmp: Path, query: str = "faults", source: str = "python", extra: dict[str, str] | None = None
    ) -> None:
        self.s, self.tmp, self.query, self.source, self.extra = s, tmp, query, source, extra or {}
        self.runs = 0
        self.proc: subprocess.Popen[bytes] | None = None
        from tests.conftest import free_port

        self.metrics_port = free_port()

    def env(self) -> dict[str, str]:
        extra = {
            envvars.CHECKPOINT_DIR: str(self.tmp / "checkpoints"),
            envvars.SCORER: "vader",
            envvars.TRIGGER_SECONDS: "0.5",
            envvars.SPARK_MASTER: "local[2]",
            envvars.METRICS_PORT: str(self.metrics_port),
            envvars.KAFKA_SOURCE: self.source,
        }
        return settings_env(self.s, **extra, **self.extra)

    def start(self, until_idle: float | None) -> None:
        self.runs += 1
        self.log = self.tmp / f"stream-{self.runs}.log"
        code = "import sys; from tone_cli.main import app; sys.argv = ['tone', *sys.argv[1:]]; app()"
        cmd = [sys.executable, "-c", code, "stream", "--query", self.query]
        if until_idle is not None:
            cmd += ["--until-idle", str(until_idle)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, env=self.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def interrupt(self) -> None:
        """Ctrl-C, as a person stops it: `tone stream` stops the query and prints its summary."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)

    def started_and_killed(self, rng: random.Random, times: int, lo: float = 15, hi: float = 35) -> list[float]:
        """Start it and kill -9 it ``times`` times, each after a random lo..hi s (Spark starts in ~15 s: some kills
        land in start-up, most mid-batch); the seconds after each start."""
        kills = []
        for _ in range(times):
            self.start(until_idle=120)
            at = rng.uniform(lo, hi)
            time.sleep(at)
            self.kill9()
            kills.append(round(at, 1))
        return kills

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def wait(self, timeout: float) -> str:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise
        out = self.log.read_text(errors="replace")
        assert code == 0, out[-4000:]
        return out


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def counted(s, users) -> dict[str, int]:
    store = open_store(s)
    return {u: agg["n"] for u in users if (agg := store.user(u))}


def compare(s, sent: list[TweetEvent]) -> dict[str, int]:
    expected = Counter(e.user_id for e in sent)
    got = counted(s, expected)
    lost = sum(max(0, n - got.get(u, 0)) for u, n in expected.items())
    doubled = sum(max(0, got.get(u, 0) - n) for u, n in expected.items())
    return {"tweets": len(sent), "users": len(expected), "lost": lost, "doubled": doubled}


def dead_letters(s) -> tuple[Counter[bytes | None], Counter[str]]:
    """The dead-letter topic's values and reasons (every one must carry a known reason)."""
    from confluent_kafka import Consumer, TopicPartition

    conn = KafkaConnection.from_settings(s)
    consumer = Consumer(conn.librdkafka() | {"group.id": "faults", "enable.auto.commit": False})
    try:
        tp = TopicPartition(s.kafka_topic_dlq, 0, 0)
        _, high = consumer.get_watermark_offsets(tp, timeout=10)
        consumer.assign([tp])
        values: Counter[bytes | None] = Counter()
        reasons: Counter[str] = Counter()
        deadline = time.monotonic() + 120
        while sum(values.values()) < high and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=1000, timeout=1.0):
                if m.error() is None:
                    values[m.value()] += 1
                    reason = dict(m.headers() or [])["reason"].decode()
                    assert reason in REASONS, reason
                    reasons[reason] += 1
        return values, reasons
    finally:
        consumer.close()


def read_topic(s, topic: str, isolation: str) -> list[tuple[bytes | None, dict[str, bytes]]]:
    """Every (value, headers) of ``topic`` (all partitions) as a reader with ``isolation`` sees it."""
    from confluent_kafka import Consumer, TopicPartition

    conn = KafkaConnection.from_settings(s)
    consumer = Consumer(conn.librdkafka() | {"group.id": f"check-{time.time_ns()}", "isolation.level": isolation})
    try:
        parts = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        out: list[tuple[bytes | None, dict[str, bytes]]] = []
        idle = 0
        while idle < 3:  # nothing for 3 s: read to the end (the last stable offset for read_committed)
            msgs = [m for m in consumer.consume(1000, timeout=1.0) if m.error() is None]
            idle = 0 if msgs else idle + 1
            out += [(m.value(), dict(m.headers() or [])) for m in msgs]
        return out
    finally:
        consumer.close()


def outputs_once(s, valid: list[TweetEvent], bad: list[bytes]) -> dict[str, int]:
    """Missing and doubled outputs in tweets.scored (by tweet id) and tweets.dlq (by value), as read_committed
    readers see them; the read_uncommitted doubles beside (aborted transactions' copies)."""
    figures = {}
    for isolation, tag in (("read_committed", ""), ("read_uncommitted", "_uncommitted")):
        ids = Counter(json.loads(v)["id"] for v, _ in read_topic(s, s.kafka_topic_scored, isolation))
        want = Counter(e.id for e in valid)
        letters = Counter(v for v, _ in read_topic(s, s.kafka_topic_dlq, isolation))
        wanted = Counter(bad)
        figures |= {
            f"scored_missing{tag}": sum((want - ids).values()),
            f"scored_doubled{tag}": sum((ids - want).values()),
            f"dlq_missing{tag}": sum((wanted - letters).values()),
            f"dlq_doubled{tag}": sum((letters - wanted).values()),
        }
    return figures


def assert_outputs_once(figures: dict[str, int]) -> None:
    """Under exactly_once (the default), read_committed readers see every output once."""
    committed = {k: v for k, v in figures.items() if not k.endswith("_uncommitted")}
    assert set(committed.values()) == {0}, committed


def test_kill_9_of_the_stream_at_three_random_moments(isolated, tmp_path):
    s = isolated
    rng = random.Random(SEED)
    sent = tweets(20_000, users=3000)
    bad = [b"bad record %d" % i for i in range(1000)]
    pairs: list[tuple[bytes | None, bytes | None]] = [*as_pairs(sent), *((b"k", v) for v in bad)]
    rng.shuffle(pairs)
    producer = produce_in_background(s, pairs, rate=400)
    from tests.helpers import tiny_rnn

    tiny_rnn(seed=7).save(tmp_path / "candidate")  # a shadow candidate beside VADER: its evidence must stay exact
    stream = Stream(s, tmp_path, extra={envvars.SHADOW_SCORER: str(tmp_path / "candidate")})
    kills = stream.started_and_killed(rng, 3)
    producer.join(timeout=300)
    assert not producer.errors
    stream.start(until_idle=8)
    out = stream.wait(timeout=300)
    figures = compare(s, sent)
    outputs = outputs_once(s, sent, bad)
    flips: dict[str, Counter[str]] = {}
    for value, _ in read_topic(s, s.kafka_topic_scored, "read_committed"):
        row = json.loads(value or b"{}")
        if row.get("shadow"):
            flips.setdefault(row["label"], Counter())[row["shadow"]["label"]] += 1
    (evidence,) = open_store(s).shadow_evidence("faults")
    record(
        "stream kill -9 x3",
        kills_after_start_s=kills,
        **figures,
        **outputs,
        shadow_compared=evidence["n"],
        shadow_agreement=round(evidence["agreement"], 4),
        shadow_flips_equal_scored_topic=evidence["flips"] == {k: dict(v) for k, v in flips.items()},
        restarted_by="the test, as a supervisor (systemd, Kubernetes) would: a killed process cannot heal itself",
        summary=out.strip().splitlines()[-1],
    )
    assert (figures["lost"], figures["doubled"]) == (0, 0)
    assert_outputs_once(outputs)
    # The shadow evidence in Redis is exactly what a read_committed reader of tweets.scored computes.
    assert evidence["flips"] == {k: dict(v) for k, v in flips.items()}
    assert evidence["n"] == sum(sum(v.values()) for v in flips.values()) > 0


def test_tweets_sent_up_to_three_times_some_deleted_one_user_forgotten_through_two_kill_9(isolated, tmp_path):
    """A re-run file and a rewound reader (each tweet one to three times), deletions, an erasure, then a replay of
    the erased user's old tweets: each user counts their distinct, undeleted tweets; the erased user stays gone."""
    s = isolated
    rng = random.Random(SEED + 37)
    sent = tweets(8000, users=1500, start=700_000, prefix="d")
    # Twins: d_twin_a sends 20 tweets and deletes 6; d_twin_b sends the 14 it keeps, with the same texts and times.
    t0 = datetime(2026, 11, 23, 12, tzinfo=UTC)
    twin_a = [TweetEvent(f"ta{i}", "d_twin_a", TEXTS[i % len(TEXTS)], t0 + timedelta(minutes=7 * i)) for i in range(20)]
    gone = {f"ta{i}" for i in (1, 4, 5, 11, 16, 19)}
    twin_b = [TweetEvent(f"tb{e.id[2:]}", "d_twin_b", e.text, e.created_at) for e in twin_a if e.id not in gone]
    erased = max(Counter(e.user_id for e in sent).items(), key=lambda kv: kv[1])[0]  # the heaviest user
    copies = []
    for e in [*sent, *twin_a, *twin_b]:
        copies += [e] * rng.randint(1, 3)
    rng.shuffle(copies)  # later copies land anywhere after... or before: the first one to be read counts
    deleted = set(rng.sample([e.id for e in sent if e.user_id != erased], 400))
    deletions = [e for e in sent if e.id in deleted]

    def delete(e: TweetEvent) -> tuple[bytes, bytes]:
        return e.user_id.encode(), json.dumps({"delete": {"id": e.id, "user_id": e.user_id}}).encode()

    controls = [delete(e) for e in deletions] + [delete(e) for e in twin_a if e.id in gone]
    controls.append((erased.encode(), json.dumps({"forget": {"user_id": erased}}).encode()))
    phases = [*as_pairs(copies), *controls]
    producer = produce_in_background(s, phases, rate=500)
    stream = Stream(s, tmp_path)
    kills = stream.started_and_killed(rng, 2)
    producer.join(timeout=300)
    assert not producer.errors
    stream.start(until_idle=8)
    stream.wait(timeout=300)
    replay = [e for e in sent if e.user_id == erased]  # a re-run of the file: the erased user's old tweets
    produce(s, as_pairs(replay))
    stream.start(until_idle=8)
    out = stream.wait(timeout=300)

    kept = [e for e in sent if e.id not in deleted and e.user_id != erased]
    figures = compare(s, kept)
    store = open_store(s)
    a, b = store.user("d_twin_a"), store.user("d_twin_b")
    twins = {k: (a[k], b[k]) for k in ("n", "scored", "counts", "mean_probs", "mean_polarity", "ewma_polarity")}
    health = open_store(s).health("faults") or {}
    written = Counter(json.loads(v)["id"] for v, _ in read_topic(s, s.kafka_topic_scored, "read_committed"))
    record(
        "duplicates, deletions and an erasure through kill -9 x2",
        kills_after_start_s=kills,
        records=len(phases) + len(replay),
        distinct_tweets=len(sent) + len(twin_a) + len(twin_b),
        deleted=len(deletions) + len(gone),
        erased_user_tweets=len(replay),
        **figures,
        replay_left_out_as_forgotten=int(health.get("forgotten", 0)),  # the last run's: the replay only
        scored_written_twice=sum(n > 1 for n in written.values()),
        summary=out.strip().splitlines()[-1],
    )
    assert (figures["lost"], figures["doubled"]) == (0, 0)
    assert max(written.values()) == 1  # a duplicate is not written to tweets.scored again
    assert int(health["forgotten"]) == len(replay)
    assert {e.id for e in kept} <= set(written)
    assert store.user(erased) is None
    assert all(erased not in dict(store.top(label, 100_000)) for label in ("positive", "negative"))
    assert a["n"] == b["n"] == 14 and a["counts"] == b["counts"] and a["scored"] == b["scored"]
    for key in ("mean_probs", "mean_polarity", "ewma_polarity"):
        assert a[key] == pytest.approx(b[key], abs=1e-9), twins


def stream_lag(s, query: str) -> int | None:
    """Records not counted yet, as the stream's health record (written after every batch) says."""
    health = open_store(s).health(query)
    return sum(json.loads(health["lag"]).values()) if health else None


def restarts_in(out: str) -> int:
    last = out.strip().splitlines()[-1]
    return int(last.split("restarts=")[1].split()[0]) if "restarts=" in last else 0


@pytest.mark.parametrize("service", ["redis", "kafka"])
def test_an_outage_of_redis_or_the_broker_heals_without_a_person(stack, isolated, tmp_path, service):
    s = isolated
    sent = tweets(15_000, users=2000, start=100_000, prefix=service[0])
    stream = Stream(s, tmp_path)
    stream.start(until_idle=None)  # runs until stopped, like a deployed stream
    producer = produce_in_background(s, as_pairs(sent), rate=150)  # ~100 s of traffic, across the outage
    wait_until(lambda: counted(s, {e.user_id for e in sent[:200]}), 180, "the first batch")
    time.sleep(5)
    pid = stack.running_pid(service)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: stack.running_pid(service) is None, 30, f"{service} to die")
    time.sleep(OUTAGE_S)
    stack.up()  # the service comes back (what ends an outage); the stream is not touched
    producer.join(timeout=600)
    assert not producer.errors, producer.errors
    wait_until(lambda: compare(s, sent)["lost"] == 0, 300, "every tweet to be counted")
    # Stop only once the stream's own bookkeeping has caught up (lag 0 in its health record): a batch still in
    # flight then would be a replay, and a double would show in the comparison below.
    wait_until(lambda: stream_lag(s, stream.query) == 0, 120, "the stream to report no lag")
    stream.interrupt()
    out = stream.wait(timeout=120)
    figures = compare(s, sent)
    outputs = outputs_once(s, sent, [])
    record(
        f"{service} kill -9, {OUTAGE_S:.0f} s outage",
        **figures,
        **outputs,
        automatic_query_restarts=restarts_in(out),
        manual_restarts=0,
        summary=out.strip().splitlines()[-1],
    )
    assert (figures["lost"], figures["doubled"]) == (0, 0)
    assert_outputs_once(outputs)


VALID = {"id": "1", "user_id": "u", "text": "fine", "created_at": "2026-11-23T10:00:00Z"}


def fuzzed(n: int, rng: random.Random) -> list[bytes | None]:
    """``n`` messages parse_event refuses, of every kind: random bytes, damaged JSON, wrong shapes, poison values."""
    base = json.dumps(VALID).encode()
    makers = [
        lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))),
        lambda: bytearray(base)[: rng.randrange(len(base))] + bytes([rng.randrange(256)]),
        lambda: json.dumps(rng.choice([[], [1, 2], "x", 3, None, True, {"nested": [VALID]}])).encode(),
        lambda: json.dumps({k: v for k, v in VALID.items() if k != rng.choice(list(VALID))}).encode(),
        lambda: json.dumps(
            {**VALID, rng.choice(["id", "user_id", "text", "created_at"]): rng.choice([[], {}, 1.5, True])}
        ).encode(),
        lambda: json.dumps({**VALID, "text": " " * rng.randrange(0, 5)}).encode(),
        lambda: json.dumps({**VALID, "text": "x" * 4001}).encode(),
        lambda: json.dumps(
            {**VALID, "created_at": rng.choice(["2026-11-23T10:00:00", "yesterday", "9999-12-31T23:59:59-23:59"])}
        ).encode(),
        lambda: json.dumps({**VALID, "user_id": rng.choice(["", "a\x00b", "\t", "x" * 257, "   "])}).encode(),
        lambda: b'{"id": 1' + b"0" * rng.randrange(4400, 6000) + b', "user_id": "u"}',
        lambda: b'{"a":' * 3000 + b"1" + b"}" * 3000,
        lambda: b'{"id":"1","user_id":"u","text":"\\ud800","created_at":"2026-11-23T10:00:00Z"}',
        lambda: base.replace(b"fine", b"caf\xe9"),
        lambda: None,
    ]
    out: list[bytes | None] = []
    while len(out) < n:
        value = rng.choice(makers)()
        value = bytes(value) if value is not None else None
        if not isinstance(parse_event(value), TweetEvent):  # by chance a mutation can still be valid: skip it
            out.append(value)
    return out


def test_fuzzed_bad_messages_among_valid_ones_are_all_dead_lettered(isolated, tmp_path):
    s = isolated
    rng = random.Random(SEED)
    valid = tweets(10_000, users=1500, start=200_000, prefix="f")
    bad = fuzzed(10_000, rng)
    mixed: list[tuple[bytes | None, bytes | None]] = [*as_pairs(valid), *[(rng.choice([None, b"k"]), b) for b in bad]]
    rng.shuffle(mixed)
    produce(s, mixed)
    stream = Stream(s, tmp_path)
    stream.start(until_idle=8)
    out = stream.wait(timeout=600)
    values, reasons = dead_letters(s)
    figures = compare(s, valid)
    record(
        "10,000 fuzzed bad + 10,000 valid",
        **figures,
        bad_sent=len(bad),
        dead_lettered=sum(values.values()),
        reasons=dict(reasons.most_common()),
        summary=out.strip().splitlines()[-1],
    )
    assert values == Counter(bad)
    assert (figures["lost"], figures["doubled"]) == (0, 0)


def test_poison_ids_and_values_neither_corrupt_nor_halt_the_counts(isolated, tmp_path):
    s = isolated
    t0 = datetime(2026, 11, 20, 0, 5, tzinfo=UTC)

    def ev(i, user):
        return TweetEvent(f"p{i}", user, "hello there", t0 + timedelta(seconds=i))

    sent = [ev(i, "alice") for i in range(50)]
    sent += [ev(100 + i, "alice:recent") for i in range(3)]
    sent += [ev(200, "bob:h:2026112000")]
    sent += [ev(300 + i, "bob") for i in range(10)]
    sent += [ev(400 + i, "alice") for i in range(50)]
    sent += [ev(500 + i, u) for i, u in enumerate(["*", "{x}", "ünïcødé 🙂", " spaced ", "x" * 256])]
    poison = [
        b'{"id": 1' + b"0" * 5000 + b', "user_id": "alice", "text": "hi", "created_at": "2026-11-20T00:00:00Z"}',
        json.dumps({**VALID, "user_id": "alice", "created_at": "9999-12-31T23:59:59-23:59"}).encode(),
    ]
    produce(s, as_pairs(sent) + [(b"alice", p) for p in poison])
    stream = Stream(s, tmp_path)
    stream.start(until_idle=6)
    stream.wait(timeout=300)
    stream.start(until_idle=6)  # a restart from the checkpoint: once, it doubled alice's count
    stream.wait(timeout=300)
    figures = compare(s, sent)
    values, reasons = dead_letters(s)
    store = open_store(s)
    assert store.user("alice")["n"] == 100
    assert store.hourly("bob", "2026112000") == {k: v for k, v in store.user("bob")["counts"].items()}
    assert sum(store.hourly("bob", "2026112000").values()) == 10
    record(
        "poison ids and values",
        **figures,
        bad_sent=len(poison),
        dead_lettered=sum(values.values()),
        reasons=dict(reasons),
    )
    assert values == Counter(poison)
    assert reasons == Counter({"invalid_json": 1, "invalid_timestamp": 1})
    assert (figures["lost"], figures["doubled"]) == (0, 0)


def transactional_produce(s, batches: list[tuple[list[TweetEvent], bool]], rate: float) -> None:
    """Write each (events, commit?) batch in one transaction at ``rate`` tweets/s, as Kafka Streams or Flink would.

    As they do, an attempt that fails with a transaction still abortable (a CI run saw produce() refused with
    "Erroneous state" while the stream was being killed on 2 busy cores) is aborted and the batch written again;
    the aborted attempt's records never reach a read_committed reader, so the batch still counts once or never.
    """
    from confluent_kafka import KafkaException, Producer

    conn = KafkaConnection.from_settings(s)
    producer = Producer(conn.librdkafka() | {"transactional.id": f"upstream-{s.kafka_topic_tweets}"})
    producer.init_transactions(60)
    t0, sent = time.monotonic(), 0
    for evs, commit in batches:
        for attempt in range(5):
            try:
                producer.begin_transaction()
                for e in evs:
                    producer.produce(s.kafka_topic_tweets, key=e.user_id.encode(), value=e.to_json())
                    sent += 1
                    if (ahead := t0 + sent / rate - time.monotonic()) > 0:
                        time.sleep(ahead)
                producer.commit_transaction(60) if commit else producer.abort_transaction(60)
                break
            except KafkaException as exc:
                if attempt == 4 or exc.args[0].fatal():
                    raise
                print(f"[upstream] transaction redone after: {exc}", flush=True)
                producer.abort_transaction(60)  # raises (and so fails the test) if the producer cannot recover


@pytest.mark.parametrize("source", ["python", "native"])
def test_a_transactional_upstream_with_aborts_through_kill_9_and_a_lost_checkpoint(isolated, tmp_path, source):
    """Committed tweets count once; aborted ones never; a checkpoint deleted after a kill -9 resumes from Redis."""
    s = isolated
    rng = random.Random(SEED)
    sent = tweets(12_000, users=1500, start=300_000, prefix=source[0])
    batches = [(sent[i : i + 100], rng.random() > 0.25) for i in range(0, len(sent), 100)]  # a quarter aborted
    # 80 s of traffic: the second kill (and the checkpoint's loss) lands while tweets still arrive, so the last run
    # has work to resume.
    upstream = in_background(transactional_produce, s, batches, 150)
    stream = Stream(s, tmp_path, source=source)
    kills = []
    for lose_checkpoint in (False, True):
        stream.start(until_idle=120)
        at = rng.uniform(18, 30)
        time.sleep(at)
        stream.kill9()
        kills.append(round(at, 1))
        if lose_checkpoint:
            import shutil

            shutil.rmtree(tmp_path / "checkpoints")  # as a cleaned cache directory or a redeploy would
    upstream.join(timeout=300)
    assert not upstream.errors, upstream.errors
    stream.start(until_idle=8)
    out = stream.wait(timeout=300)
    committed = [e for evs, commit in batches if commit for e in evs]
    figures = compare(s, committed)
    aborted = len(sent) - len(committed)
    record(
        f"transactional upstream ({source} source), kill -9 x2, checkpoint deleted after the second",
        **figures,
        aborted_tweets=aborted,
        kills_after_start_s=kills,
        resumed_from_redis="resuming after the offsets Redis counted" in out,
        summary=out.strip().splitlines()[-1],
    )
    assert "resuming after the offsets Redis counted" in out
    assert int(out.strip().splitlines()[-1].split("records=")[1].split()[0]) > 0  # the resumed run had work to do
    assert (figures["lost"], figures["doubled"]) == (0, 0)  # doubled would include any aborted tweet counted


def test_a_backlog_drains_in_bounded_steps_while_lookups_stay_fast(isolated, tmp_path):
    """300,000 tweets produced while the stream was down, then drained; a reader looks users up throughout."""
    s = isolated
    n = int(os.environ.get("TONE_FAULT_BACKLOG", "300000"))
    sent = tweets(n, users=60_000, start=400_000, prefix="b")
    t0 = time.monotonic()
    produce(s, as_pairs(sent))
    produce_s = time.monotonic() - t0
    store = open_store(s)
    users = sorted({e.user_id for e in sent})
    waits: list[float] = []
    stop = threading.Event()

    def look() -> None:
        reader = open_store(s)
        r = random.Random(SEED)
        while not stop.is_set():
            started = time.perf_counter()
            reader.user(r.choice(users))
            waits.append(time.perf_counter() - started)
            time.sleep(0.002)

    looker = threading.Thread(target=look, daemon=True)
    looker.start()
    stream = Stream(s, tmp_path)
    t0 = time.monotonic()
    stream.start(until_idle=10)
    out = stream.wait(timeout=840)
    drain_s = time.monotonic() - t0 - 10
    stop.set()
    looker.join()
    figures = compare(s, sent)
    waits.sort()
    batches = int(out.strip().splitlines()[-1].split("after ")[1].split()[0])
    record(
        f"backlog of {n:,} after downtime, lookups during the drain",
        **figures,
        produce_s=round(produce_s, 1),
        drain_s_incl_start=round(drain_s, 1),
        batches=batches,
        lookups=len(waits),
        lookup_p50_ms=round(1000 * waits[len(waits) // 2], 1),
        lookup_p99_ms=round(1000 * waits[int(len(waits) * 0.99)], 1),
        lookup_max_ms=round(1000 * waits[-1], 1),
        summary=out.strip().splitlines()[-1],
    )
    assert (figures["lost"], figures["doubled"]) == (0, 0)
    assert batches >= n // s.max_per_trigger  # bounded micro-batches, not one batch of the whole backlog
    assert store.last_offset("faults", s.kafka_topic_tweets, 0) is not None
    # Before bounded steps one Redis script carried a whole partition's backlog: a 1.5 s stall at 300k. A step of
    # 500 tweets takes ~30-60 ms; the rest of the bound is this 2-core machine's scheduling under a full drain.
    assert waits[int(len(waits) * 0.99)] < 0.25
    assert waits[-1] < 0.75


POSITIVE = ["I love the new {t}, it is wonderful", "Great news about {t}, so happy"]
NEGATIVE = ["{t} is awful, I hate it", "Terrible experience with {t}, really bad"]
NEUTRAL = ["{t} update at 3pm today", "Reading about {t} on the train"]


def conversation_feed(minutes: int, turn: int, seed: int) -> list[TweetEvent]:
    """Three hours of event time: #launch mostly positive, then mostly negative from minute ``turn``; #steady,
    $acme and #weather (declared by X's entities) steady; some tweets with no tag or two; a few a minute late."""
    rng = random.Random(seed)
    t0 = datetime(2026, 11, 23, tzinfo=UTC)
    out = []
    for m in range(minutes):
        for j in range(48):
            tag = rng.choice(["#launch", "#steady", "$acme", "#weather", None])
            shares = (0.1, 0.2) if tag != "#launch" or m < turn else (0.75, 0.1)  # negative, neutral
            x = rng.random()
            pool = NEGATIVE if x < shares[0] else NEUTRAL if x < shares[0] + shares[1] else POSITIVE
            text = rng.choice(pool).format(t=tag or "it")
            if tag and rng.random() < 0.1:
                text += " #extra"
            at = t0 + timedelta(minutes=m, seconds=j * 1.25 - (45 if rng.random() < 0.01 else 0))
            declared = ("#weather",) if tag == "#weather" else None  # as X's entities would say
            out.append(TweetEvent(f"c{m}-{j}", f"u{rng.randrange(400):04d}", text, at, "en", None, declared))
    return out


def test_a_tagged_feed_counts_each_tag_exactly_through_kill_9_and_finds_the_turn(isolated, tmp_path):
    """The issue's acceptance: every tag's counts exact through kill -9; the timeline's minutes sum to the counts;
    a shift for the turning tag within 10 minutes of event time after the turn, none for the steady ones."""
    from tone.aggregates.timeline import tag_report, timeline_report
    from tone.tags import STREAM, of_tweet

    s = isolated
    rng = random.Random(SEED + 39)
    turn = 100
    sent = conversation_feed(180, turn, SEED)
    producer = produce_in_background(s, as_pairs(sent), rate=600)
    stream = Stream(s, tmp_path, query="conversation")
    kills = stream.started_and_killed(rng, 2, hi=30)
    producer.join(timeout=300)
    assert not producer.errors
    stream.start(until_idle=8)
    out = stream.wait(timeout=300)

    want: dict[str, int] = Counter()
    for e in sent:
        want.update({STREAM, *of_tweet(e.tags, e.text)})
    scored = [json.loads(v or b"{}") for v, _ in read_topic(s, s.kafka_topic_scored, "read_committed")]
    by_label: dict[str, Counter[str]] = {}
    for row in scored:
        for tag in (STREAM, *row.get("tags", [])):
            by_label.setdefault(tag, Counter())[row["label"]] += 1
    store = open_store(s)
    reports = {tag: tag_report(store, tag, s) for tag in want}
    got = {tag: r["tweets"] if r else 0 for tag, r in reports.items()}
    lost = sum(max(0, n - got[t]) for t, n in want.items())
    doubled = sum(max(0, got[t] - n) for t, n in want.items())
    sums = {tag: sum(m["tweets"] for m in timeline_report(store, tag, 200, s)["minutes"]) for tag in want}
    shifts = {tag: [(x["at"], x["direction"]) for x in r["shifts"]] for tag, r in reports.items() if r}
    turn_at = datetime(2026, 11, 23, tzinfo=UTC) + timedelta(minutes=turn)
    launch = [datetime.fromisoformat(at) for at, d in shifts["#launch"] if d == "negative"]
    record(
        "tagged feed, stream kill -9 x2",
        kills_after_start_s=kills,
        tweets=len(sent),
        tags={t: n for t, n in want.items() if t != STREAM},
        lost=lost,
        doubled=doubled,
        counts_equal_scored_topic=all(reports[t]["counts"] == dict(by_label.get(t, {})) for t in want),
        minutes_sum_to_counts=sums == got,
        launch_shift_delay_min=[round((at - turn_at).total_seconds() / 60, 1) for at in launch],
        steady_shifts={t: v for t, v in shifts.items() if t not in ("#launch", STREAM)},
        late=reports[STREAM]["late"],
        summary=out.strip().splitlines()[-1],
    )
    assert (lost, doubled) == (0, 0), (got, dict(want))
    for tag in want:
        assert reports[tag]["counts"] == dict(by_label[tag]), tag  # labels as a read_committed reader sees them
    assert sums == got
    assert len(launch) == 1 and turn_at <= launch[0] <= turn_at + timedelta(minutes=10), shifts["#launch"]
    assert all(not v for t, v in shifts.items() if t in ("#steady", "$acme", "#weather")), shifts
    cli = subprocess.run(
        [sys.executable, "-m", "tone_cli.main", "tag", "$ACME", "--json"],
        env=settings_env(s), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert json.loads(cli.stdout)["tweets"] == want["$acme"]
