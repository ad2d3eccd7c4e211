"""What a Python worker keeps between tasks (streaming/worker.py) and the task's output schema."""

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
