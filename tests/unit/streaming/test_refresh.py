"""The refresher's decisions without Spark: interval, swap, refusal, fallback."""

from streaming.refresh import ModelRefresher
from tests.helpers import tiny_rnn
from tone.registry import Registry
from tone.settings import load_settings


def test_refresh_interval_swap_and_refusal(tmp_path):
    s = load_settings(registry_uri=str(tmp_path / "reg"), model_dir=tmp_path / "m", model_refresh_s=30)
    registry = Registry.from_settings(s)
    now = [0.0]
    refresher = ModelRefresher(s, clock=lambda: now[0], registry=registry)
    assert refresher.initial() == "rnn"  # nothing approved yet: the default model

    tiny_rnn(seed=1).save(tmp_path / "a")
    a = registry.publish(tmp_path / "a", source={}).version
    registry.approve(a)
    now[0] = 10
    assert refresher.check("rnn") is None  # not due yet
    now[0] = 31
    assert refresher.check("rnn") == f"registry:{a}"
    now[0] = 62
    assert refresher.check(f"registry:{a}") is None  # unchanged

    (tmp_path / "b").mkdir()
    tiny_rnn(seed=2).save(tmp_path / "b")
    b = registry.publish(tmp_path / "b", source={}).version
    registry.approve(b, force=True)
    (tmp_path / "reg" / "versions" / b / "artifact" / "tokenizer.json").write_text("{}")
    now[0] = 100
    assert refresher.check(f"registry:{a}") is None
    assert b in refresher.refused
    now[0] = 200
    assert refresher.check(f"registry:{a}") is None  # not retried while b stays the approved version
    assert [e.action for e in refresher.events] == ["start", "swap", "refuse"]
