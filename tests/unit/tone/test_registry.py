"""The registry on a local directory: immutable versions, the approval gate, rollback, verified fetches.

The same code runs on S3 (moto) in tests/integration/test_tuning_sagemaker.py.
"""

import json

import pytest

from tests.helpers import tiny_rnn
from tone.errors import ArtifactError
from tone.registry import Registry, RegistryError
from tone.settings import load_settings


@pytest.fixture
def settings(tmp_path):
    return load_settings(
        registry_uri=str(tmp_path / "registry"),
        model_dir=tmp_path / "models",
        approve_margin=0.01,
        approve_min_shadow=0,
    )


@pytest.fixture
def registry(settings):
    return Registry.from_settings(settings)


def artifact(tmp_path, name, f1, seed):
    return tiny_rnn(seed=seed), tiny_rnn(seed=seed).save(tmp_path / name, metrics={"test_macro_f1": f1})


def test_publish_is_immutable_and_idempotent(registry, tmp_path):
    _, manifest = artifact(tmp_path, "a", 0.70, 1)
    first = registry.publish(tmp_path / "a", source={"backend": "test"})
    assert first.version == manifest["version"]
    assert first.status == "candidate"
    assert first.registration["files"]["model.safetensors"] == manifest["files"]["model.safetensors"]
    again = registry.publish(tmp_path / "a", source={"backend": "other"})
    assert again.registration["source"] == {"backend": "test"}  # nothing was rewritten
    assert [e["action"] for e in registry.events()] == ["publish"]


def test_publish_refuses_a_tampered_artifact(registry, tmp_path):
    artifact(tmp_path, "a", 0.7, 1)
    (tmp_path / "a" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="checksum"):
        registry.publish(tmp_path / "a", source={})
    assert registry.versions() == []


def test_approval_gate_margin_force_and_rollback(registry, tmp_path):
    def publish(name, f1, seed):
        artifact(tmp_path, name, f1, seed)
        return registry.publish(tmp_path / name, source={}).version

    a, b, c = publish("a", 0.700, 1), publish("b", 0.705, 2), publish("c", 0.720, 3)
    assert "no approved version yet" in registry.approve(a)
    with pytest.raises(RegistryError, match=r"0\.7050 does not beat .* by the margin 0\.01"):
        registry.approve(b)  # +0.005 < margin 0.01
    assert registry.approved_version() == a
    assert "approved" in registry.approve(b, margin=0.001)
    assert registry.get(a).status == "archived"
    registry.approve(c)
    statuses = {v.version: v.status for v in registry.versions()}
    assert statuses == {a: "archived", b: "archived", c: "approved"}
    assert "rolled back to " + b in registry.rollback()
    assert registry.approved_version() == b
    assert registry.get(c).status == "archived"
    registry.rollback(to=a)
    assert registry.approved_version() == a
    with pytest.raises(RegistryError, match="forced|not approved"):
        registry.approve(b)
    assert "forced" in registry.approve(b, force=True, reason="a test")
    assert [e["action"] for e in registry.events()][-3:] == ["rollback", "rollback", "approve"]


def test_unknown_versions_and_empty_rollback(registry):
    with pytest.raises(RegistryError, match="no version 'rnn-0'"):
        registry.approve("rnn-0")
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback()


def test_fetch_verifies_and_refuses_corruption(registry, settings, tmp_path):
    scorer, _ = artifact(tmp_path, "a", 0.7, 1)
    version = registry.publish(tmp_path / "a", source={}).version
    path = registry.fetch(version)
    assert path == settings.model_dir / "registry" / version
    from tone.scoring import factory

    assert factory.load(path).version == version
    # Corrupt the stored copy (bit rot, a bad upload): a fresh fetch is refused and nothing lands in the cache.
    stored = tmp_path / "registry" / "versions" / version / "artifact" / "model.safetensors"
    stored.write_bytes(stored.read_bytes()[:-8] + b"\0" * 8)
    fresh = tmp_path / "other-cache"
    with pytest.raises(ArtifactError, match="registered sha256"):
        registry.fetch(version, fresh)
    assert not (fresh / version).exists()
    # A corrupted local cache is detected and replaced (from storage, which is corrupt here: refused).
    (path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ArtifactError):
        registry.fetch(version)


def test_index_is_plain_json(registry, tmp_path):
    artifact(tmp_path, "a", 0.7, 1)
    version = registry.publish(tmp_path / "a", source={}).version
    registry.approve(version)
    index = json.loads((tmp_path / "registry" / "index.json").read_text())
    assert index["approved"] == version
    assert index["versions"][version]["status"] == "approved"


def test_an_onnx_export_travels_through_the_registry_and_the_model_tar(registry, tmp_path):
    from tests.helpers import tiny_transformer_artifact
    from tone.scoring import artifacts, factory

    art = tiny_transformer_artifact(tmp_path / "tr")
    version = registry.publish(art, source={"backend": "test"}).version
    fetched = registry.fetch(version)
    assert (fetched / "onnx" / "model.onnx").is_file()
    assert factory.load(fetched, device="cpu").backend.startswith("onnx-")
    # SageMaker's layout: the nested onnx/ files survive packing and the checked extraction
    tar = artifacts.pack_model_tar(art, tmp_path / "model.tar.gz")
    assert factory.load(tar, device="cpu").backend.startswith("onnx-")


def evidence(live, candidate, n, agree):
    from tone.aggregates.shadow import evidence_view

    fields = {f"{live}\t{candidate}\tn": str(n), f"{live}\t{candidate}\tagree": str(agree)}
    fields[f"{live}\t{candidate}\tlang\ten\tn"] = str(n)
    fields[f"{live}\t{candidate}\tlang\ten\tagree"] = str(agree)
    fields[f"{live}\t{candidate}\tflip\tpositive\tpositive"] = str(agree)
    fields[f"{live}\t{candidate}\tflip\tpositive\tnegative"] = str(n - agree)
    (row,) = evidence_view([fields])
    return row


def test_approval_needs_shadow_evidence_and_low_churn_unless_forced_with_a_reason(tmp_path):
    s = load_settings(
        registry_uri=str(tmp_path / "registry"), model_dir=tmp_path / "models", approve_margin=0.0,
        approve_min_shadow=100, approve_max_churn=0.1,
    )  # fmt: skip
    registry = Registry.from_settings(s)
    a, b = (registry.publish(artifact(tmp_path, n, 0.7, i)[0] and tmp_path / n, source={}).version
            for i, n in ((1, "a"), (2, "b")))  # fmt: skip
    with pytest.raises(RegistryError, match="--force needs --reason"):
        registry.approve(a, force=True)
    with pytest.raises(RegistryError, match=r"0 tweets of shadow evidence, at least 100 needed.*tone models shadow"):
        registry.approve(a)
    assert "forced" in registry.approve(a, force=True, reason="bootstrap: nothing live to compare with")
    registry.set_shadow(b)
    assert registry.shadow_version() == b
    with pytest.raises(RegistryError, match="99 tweets of shadow evidence"):
        registry.approve(b, evidence=evidence(a, b, 99, 99))
    with pytest.raises(RegistryError, match=r"20\.0% of 200 shadowed tweets change label .* TONE_APPROVE_MAX_CHURN"):
        registry.approve(b, evidence=evidence(a, b, 200, 160))
    line = registry.approve(b, evidence=evidence(a, b, 200, 190))
    assert f"shadow: 200 tweets against {a}, 95.0% agree" in line
    assert registry.approved_version() == b and registry.shadow_version() is None  # it scores live now
    first, second = [e for e in registry.events() if e["action"] == "approve"]
    assert first["reason"] == "bootstrap: nothing live to compare with" and first["forced"] is True
    assert second["shadow"]["n"] == 200 and second["shadow"]["flips"] == {"positive": {"positive": 190, "negative": 10}}
    assert "reason" not in second
    with pytest.raises(RegistryError, match="is the approved version"):
        registry.set_shadow(b)
