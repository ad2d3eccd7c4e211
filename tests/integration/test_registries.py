"""The registry's backends behind one protocol: the project's index, SageMaker Model Registry (moto server) and
MLflow's (a local tracking server on SQLite). Publish, shadow, approve, roll back, fetch and the stream's model
refresh work the same on each, and each keeps the state where its users look for it."""

import pytest

from streaming.refresh import ModelRefresher, ShadowFollower
from tests.helpers import tiny_rnn
from tone import aws
from tone.errors import ArtifactError
from tone.registry import Registry, RegistryError
from tone.scoring.loader import load_scorer

pytestmark = pytest.mark.integration


def publish(registry, tmp_path, name, seed, f1=0.6):
    tiny_rnn(seed=seed).save(tmp_path / name, metrics={"test_macro_f1": f1})
    return registry.publish(tmp_path / name, source={"backend": "test", "name": name}).version


def native_state(s, registry):
    """What the service itself says: SageMaker's approval statuses, MLflow's aliases (None for the index)."""
    uri = s.registry_uri
    if uri.startswith("sagemaker://"):
        sm = aws.client(s, "sagemaker")
        out = {}
        for kind in ("rnn", "transformer"):
            try:
                page = sm.list_model_packages(ModelPackageGroupName=registry.backend.group(kind))
            except sm.exceptions.ClientError:
                continue
            out |= {p["ModelPackageDescription"]: p["ModelApprovalStatus"] for p in page["ModelPackageSummaryList"]}
        return out
    if uri.startswith("mlflow://"):
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=s.mlflow_tracking_uri, registry_uri=s.mlflow_tracking_uri)
        model = client.get_registered_model(registry.backend.name)
        return {
            alias: client.get_model_version(model.name, n).tags["tone.version"] for alias, n in model.aliases.items()
        }
    return None


def test_publish_shadow_approve_rollback_fetch_and_refresh_on_each_backend(registry_settings, tmp_path):
    s = registry_settings
    registry = Registry.from_settings(s)
    now = [0.0]
    refresher = ModelRefresher(s, clock=lambda: now[0], registry=registry)
    follower = ShadowFollower(s.model_copy(update={"model_refresh_s": 0}), follows_registry=True, registry=registry)

    a, b = publish(registry, tmp_path, "a", 1), publish(registry, tmp_path, "b", 2, f1=0.7)
    assert publish(registry, tmp_path, "a2", 1) == a  # the same weights: the same version, nothing new
    assert {v.version: v.status for v in registry.versions()} == {a: "candidate", b: "candidate"}
    assert registry.get(a).registration["source"] == {"backend": "test", "name": "a"}

    registry.approve(a)
    assert refresher.initial() == f"registry:{a}"
    assert follower.initial(f"registry:{a}") == ""
    registry.set_shadow(b)
    assert follower.check("", f"registry:{a}") == f"registry:{b}"
    if s.registry_uri.startswith("sagemaker://"):
        assert native_state(s, registry) == {a: "Approved", b: "PendingManualApproval"}
    elif s.registry_uri.startswith("mlflow://"):
        assert native_state(s, registry) == {"champion": a, "challenger": b}

    evidence = {"live": a, "candidate": b, "n": 300, "agreement": 0.9, "churn": 0.1, "flips": {}, "languages": {},
                "mean_abs_polarity_change": 0.05}  # fmt: skip
    assert "shadow: 300 tweets against" in registry.approve(b, evidence=evidence)
    assert (registry.approved_version(), registry.shadow_version()) == (b, None)
    now[0] = 100
    assert refresher.check(f"registry:{a}") == f"registry:{b}"  # the running stream's hot reload
    if s.registry_uri.startswith("sagemaker://"):
        assert native_state(s, registry) == {a: "Rejected", b: "Approved"}
    elif s.registry_uri.startswith("mlflow://"):
        assert native_state(s, registry) == {"champion": b}

    assert "rolled back to " + a in registry.rollback()
    now[0] = 200
    assert refresher.check(f"registry:{b}") == f"registry:{a}"
    with pytest.raises(RegistryError, match="--force needs --reason"):
        registry.approve(b, force=True)
    registry.approve(b, force=True, reason="the metric gate is wrong here")
    approvals = [e for e in registry.events() if e["action"] == "approve"]
    assert [e["version"] for e in approvals] == [a, b, b]
    assert approvals[1]["shadow"]["n"] == 300 and approvals[2]["reason"] == "the metric gate is wrong here"
    assert [e["action"] for e in registry.events()] == ["publish", "publish", "approve", "shadow", "approve",
                                                        "rollback", "approve"]  # fmt: skip

    # What a worker does on a swap: fetch (checksums verified) and load the pinned version.
    scorer = load_scorer(f"registry:{a}", s)
    assert scorer.version == a and len(scorer.score(["I love it"])) == 1
    with pytest.raises(RegistryError, match="no version 'rnn-0'"):
        registry.fetch("rnn-0")


def test_a_tampered_file_is_refused_on_fetch_from_each_backend(registry_settings, tmp_path):
    s = registry_settings
    registry = Registry.from_settings(s)
    a = publish(registry, tmp_path, "a", 1)
    reg = registry.registration(a)
    reg["files"]["model.safetensors"] = "0" * 64  # as if the stored file changed after registration

    class Tampered(type(registry.backend)):
        def registration(self, version):
            return reg

    registry.backend.__class__ = Tampered
    with pytest.raises(ArtifactError, match="does not match its registered sha256"):
        registry.fetch(a, cache_dir=tmp_path / "cache")
