"""The refresher's decisions without Spark: interval, swap, refusal, and a start that fails closed."""

import pytest

from streaming.refresh import ModelRefresher
from tests.helpers import tiny_rnn
from tone.errors import ArtifactError, ConfigError
from tone.registry import Registry
from tone.settings import load_settings


def test_refresh_interval_swap_and_refusal(tmp_path):
    s = load_settings(
        registry_uri=str(tmp_path / "reg"), model_dir=tmp_path / "m", approve_min_shadow=0, model_refresh_s=30
    )
    registry = Registry.from_settings(s)
    now = [0.0]
    refresher = ModelRefresher(s, clock=lambda: now[0], registry=registry)
    with pytest.raises(ConfigError, match="no approved version.*tone models approve"):
        refresher.initial()  # nothing approved: no other model is started instead

    tiny_rnn(seed=1).save(tmp_path / "a")
    a = registry.publish(tmp_path / "a", source={}).version
    registry.approve(a)
    assert refresher.initial() == f"registry:{a}"
    tiny_rnn(seed=4).save(tmp_path / "a2")
    a2 = registry.publish(tmp_path / "a2", source={}).version
    registry.approve(a2, force=True, reason="a test")
    now[0] = 10
    assert refresher.check(f"registry:{a}") is None  # not due yet
    now[0] = 31
    assert refresher.check(f"registry:{a}") == f"registry:{a2}"
    now[0] = 62
    assert refresher.check(f"registry:{a2}") is None  # unchanged

    (tmp_path / "b").mkdir()
    tiny_rnn(seed=2).save(tmp_path / "b")
    b = registry.publish(tmp_path / "b", source={}).version
    registry.approve(b, force=True, reason="a test")
    (tmp_path / "reg" / "versions" / b / "artifact" / "tokenizer.json").write_text("{}")
    now[0] = 100
    assert refresher.check(f"registry:{a2}") is None
    assert b in refresher.refused
    now[0] = 200
    assert refresher.check(f"registry:{a2}") is None  # not retried while b stays the approved version
    assert [e.action for e in refresher.events] == ["start", "swap", "refuse"]


def _truncated_artifact(tmp_path, name, seed):
    """An artifact whose weights are cut short, with a manifest written for the cut file: checksums match."""
    from tone.scoring import artifacts

    directory = tmp_path / name
    tiny_rnn(seed=seed).save(directory)
    manifest = artifacts.read_manifest(directory)
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    extra = {
        k: v for k, v in manifest.items() if k not in ("format", "kind", "version", "labels", "files", "created_at")
    }
    artifacts.write_manifest(directory, manifest["kind"], manifest["labels"], **extra)
    artifacts.verify(directory)  # the checksums really do match
    return directory


def test_publish_refuses_an_artifact_that_verifies_but_does_not_load(tmp_path):
    import pytest

    from tone.errors import ArtifactError

    s = load_settings(registry_uri=str(tmp_path / "reg"), model_dir=tmp_path / "m", approve_min_shadow=0)
    bad = _truncated_artifact(tmp_path, "bad", seed=3)
    with pytest.raises(ArtifactError, match="does not load or score"):
        Registry.from_settings(s).publish(bad, source={})
    assert Registry.from_settings(s).versions() == []


def test_a_version_that_raises_anything_while_loading_is_refused_and_the_old_one_keeps_scoring(tmp_path, monkeypatch):
    import tone.scoring.smoke

    s = load_settings(
        registry_uri=str(tmp_path / "reg"), model_dir=tmp_path / "m", approve_min_shadow=0, model_refresh_s=0
    )
    registry = Registry.from_settings(s)
    tiny_rnn(seed=1).save(tmp_path / "good")
    good = registry.publish(tmp_path / "good", source={}).version
    registry.approve(good)
    refresher = ModelRefresher(s, registry=registry)
    assert refresher.initial() == f"registry:{good}"

    # registered by something that did not check (an older publisher): loading it raises SafetensorError
    with monkeypatch.context() as m:
        m.setattr(tone.scoring.smoke, "load_checked", lambda *a, **k: None)
        bad = registry.publish(_truncated_artifact(tmp_path, "bad", seed=2), source={}).version
    registry.approve(bad, force=True, reason="a test")
    assert refresher.check(f"registry:{good}") is None  # refused, not raised
    assert bad in refresher.refused
    refusal = refresher.events[-1]
    assert (refusal.action, refusal.version) == ("refuse", bad)
    assert "header" in refusal.detail, refusal.detail  # SafetensorError: not one of the project's own errors


def test_a_version_that_does_not_read_the_routed_languages_is_refused(tmp_path):
    s = load_settings(
        registry_uri=str(tmp_path / "reg"), model_dir=tmp_path / "m", approve_min_shadow=0, model_refresh_s=0
    )
    registry = Registry.from_settings(s)
    refresher = ModelRefresher(s, registry=registry, routed=["en", "de"])
    tiny_rnn(seed=1).save(tmp_path / "en")
    english = registry.publish(tmp_path / "en", source={}).version
    registry.approve(english)
    assert refresher.check("rnn") is None  # reads en only: TONE_ROUTES also sends it de
    assert "TONE_ROUTES sends it de" in refresher.events[-1].detail
    tiny_rnn(seed=2).save(tmp_path / "both", languages=["de", "en"])
    both = registry.publish(tmp_path / "both", source={}).version
    registry.approve(both, force=True, reason="a test")
    assert refresher.check("rnn") == f"registry:{both}"


def test_an_approved_version_that_fails_stops_the_start_with_what_to_do(tmp_path):
    s = load_settings(registry_uri=str(tmp_path / "reg"), model_dir=tmp_path / "m", approve_min_shadow=0)
    registry = Registry.from_settings(s)
    tiny_rnn(seed=1).save(tmp_path / "a")
    a = registry.publish(tmp_path / "a", source={}).version
    registry.approve(a)
    (tmp_path / "reg" / "versions" / a / "artifact" / "tokenizer.json").write_text("{}")
    with pytest.raises(ArtifactError, match=rf"approved version {a}.*tone models rollback"):
        ModelRefresher(s, registry=registry).initial()


def test_the_shadow_follows_its_setting_or_the_registry_and_a_bad_candidate_is_refused(tmp_path):
    from streaming.refresh import ShadowFollower

    base = {"registry_uri": str(tmp_path / "reg"), "model_dir": tmp_path / "m", "model_refresh_s": 0}
    assert ShadowFollower(load_settings(**base), follows_registry=False).initial("rnn") == ""
    assert (
        ShadowFollower(load_settings(**base, shadow_scorer="vader"), follows_registry=False).initial("rnn") == "vader"
    )
    assert ShadowFollower(load_settings(**base, shadow_scorer="none"), follows_registry=True).initial("rnn") == ""

    s = load_settings(**base)
    registry = Registry.from_settings(s)
    follower = ShadowFollower(s, follows_registry=True, registry=registry)
    assert follower.initial("registry:x") == ""  # nothing in shadow yet
    good = registry.publish(tiny_rnn(seed=1).save(tmp_path / "good") and tmp_path / "good", source={}).version
    registry.set_shadow(good)
    assert follower.check("", "registry:x") == f"registry:{good}"
    assert follower.check(f"registry:{good}", "registry:x") is None  # unchanged
    assert follower.check(f"registry:{good}", f"registry:{good}") == ""  # it went live: nothing to compare

    bad = registry.publish(tiny_rnn(seed=2).save(tmp_path / "bad") and tmp_path / "bad", source={}).version
    registry.set_shadow(bad)
    (tmp_path / "reg" / "versions" / bad / "artifact" / "model.safetensors").write_bytes(b"broken")
    assert follower.check(f"registry:{good}", "registry:x") == ""  # refused: no shadow, live goes on
    assert follower.refused[f"registry:{bad}"]  # why, for the log and the health record
    assert follower.check("", "registry:x") is None  # not tried again
    follower.drop(f"registry:{good}", "RuntimeError: boom")
    assert [e.action for e in follower.events] == ["swap", "refuse", "drop"]
