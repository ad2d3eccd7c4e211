"""What a Python worker keeps between tasks (streaming/worker.py) and the task's output schema."""

import gc
import weakref

import pytest

from streaming.pipeline import STATS_SCHEMA, RangeStats
from streaming.worker import WorkerResources


class Closable:
    def __init__(self, name):
        self.name, self.closed = name, False

    def close(self):
        self.closed = True


def test_one_entry_per_kind_rebuilt_and_closed_when_its_configuration_changes():
    res = WorkerResources()
    built = []

    def build(name):
        def make():
            built.append(name)
            return Closable(name)

        return make

    first = res.get("producer", "cfg-a", build("a"))
    assert res.get("producer", "cfg-a", build("unused")) is first  # reused, not rebuilt
    second = res.get("producer", "cfg-b", build("b"))  # another query's settings: a new client
    assert (first.closed, second.closed, built) == (True, False, ["a", "b"])
    res.drop("producer")
    assert second.closed
    assert res.get("producer", "cfg-b", build("c")).name == "c"


def test_stats_schema_follows_the_dataclass():
    columns = [c.split() for c in STATS_SCHEMA.split(", ")]
    assert [name for name, _ in columns] == list(RangeStats.__dataclass_fields__)
    kinds = dict(columns)
    assert (kinds["partition"], kinds["start_offset"], kinds["applied"], kinds["lags"]) == (
        "int",
        "long",
        "boolean",
        "string",
    )


def test_a_model_that_fails_to_load_on_a_worker_leaves_the_old_one_serving_and_is_reported():
    res = WorkerResources()
    old = res.get("scorer", "v1", lambda: Closable("v1"), keep_on_failure=True)
    attempts = []

    def broken():
        attempts.append(1)
        raise OSError("model.safetensors: checksum mismatch")

    assert res.get("scorer", "v2", broken, keep_on_failure=True) is old
    assert not old.closed
    assert res.refusal("scorer", "v2") == "OSError: model.safetensors: checksum mismatch"
    assert res.get("scorer", "v2", broken, keep_on_failure=True) is old  # not retried on every batch
    assert attempts == [1]
    new = res.get("scorer", "v3", lambda: Closable("v3"), keep_on_failure=True)
    assert (new.name, old.closed, res.refusal("scorer", "v3")) == ("v3", True, None)


def test_without_an_old_one_a_load_failure_raises():
    res = WorkerResources()

    def broken():
        raise OSError("no such file")

    with pytest.raises(OSError, match="no such file"):  # a first load that fails fails the task
        res.get("scorer", "v1", broken, keep_on_failure=True)


class Cyclic(Closable):
    def __init__(self, name):
        super().__init__(name)
        self.me = self  # a reference cycle: only the cyclic collector frees it


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()


def test_after_a_build_the_worker_freezes_its_heap_once_and_a_dropped_resource_is_still_collected(unfrozen):
    res = WorkerResources()
    gc.unfreeze()
    assert not res.settle()  # nothing built: no collection
    old = res.get("scorer", "v1", lambda: Cyclic("v1"))
    assert res.settle() and gc.get_freeze_count() > 0
    assert not res.settle()  # once per build, not per task
    frozen = gc.get_freeze_count()
    dead = weakref.ref(old)
    del old
    res.get("scorer", "v2", lambda: Cyclic("v2"))  # the swap unfreezes ...
    assert gc.get_freeze_count() == 0
    assert res.settle()  # ... and the next settle frees the old model's cycle before freezing again
    assert dead() is None
    assert 0 < gc.get_freeze_count() <= frozen + 1000


def test_a_producer_the_broker_refused_is_rebuilt_for_the_next_task(monkeypatch):
    """One transient TLS or authentication refusal used to mark the worker's producer refused for its life."""
    import json

    from streaming import process
    from streaming.pipeline import chunks_of
    from tone.aggregates.memory_store import MemoryToneStore
    from tone.kafka.clients import DeliveryError, DeliveryStats

    class Refusing:
        def __init__(self, refuse):
            self.refuse, self.stats, self.sent = refuse, DeliveryStats(), []

        def send(self, topic, *, key=None, value, headers=None):
            self.sent.append(value)

        def flush(self, timeout=None):
            if self.refuse:
                raise DeliveryError("the broker refused this client: SSL handshake failed")

        def close(self):
            pass

    built = []
    monkeypatch.setattr(process, "RESOURCES", WorkerResources())
    store = MemoryToneStore()
    monkeypatch.setattr(process, "_store", lambda config: store)

    def build():
        built.append(1)
        return Refusing(refuse=len(built) == 1)  # the first one is refused, as after a TLS hiccup

    def producer(config):
        return process.RESOURCES.get("producer", config.fingerprint(), build)

    monkeypatch.setattr(process, "_producer", producer)
    config = process.JobConfig("q", "vader", {"output_guarantee": "at_least_once"})
    value = json.dumps({"id": "t1", "user_id": "u", "text": "I love it", "lang": "en",
                        "created_at": "2026-11-23T10:00:00Z"}).encode()  # fmt: skip

    def task():
        return process._run(config, [chunks_of([("tweets", 0, 0, 1_795_428_000_000, b"u", value)])], {})

    with pytest.raises(DeliveryError, match="refused"):
        task()
    (row,) = task()  # the retry builds a new producer, which delivers
    assert (len(built), row.counted, store.user("u")["n"]) == (2, 1, 1)
