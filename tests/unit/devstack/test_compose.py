"""docker-compose.yml cannot run here (no Docker engine), so check that it agrees with the settings module."""

from urllib.parse import urlparse

import yaml

from tests.helpers import REPO_ROOT
from tone import envvars
from tone.settings import Settings, load_settings

ROOT = REPO_ROOT
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DEFAULTS = load_settings()


def _env_vars(service):
    env = service.get("environment", {})
    return env if isinstance(env, dict) else dict(e.split("=", 1) for e in env)


def test_services_present():
    assert {"kafka", "kafka-init", "redis", "producer", "stream", "api"} <= set(COMPOSE["services"])
    for name in ("producer", "stream", "api"):
        assert COMPOSE["services"][name]["build"] == "."
    assert (ROOT / "Dockerfile").exists()


def test_every_tone_variable_is_a_real_setting_with_a_valid_value():
    known = {getattr(envvars, n) for n in dir(envvars) if n.isupper()}
    for name in ("producer", "stream", "api"):
        env = _env_vars(COMPOSE["services"][name])
        tone_vars = {k: str(v) for k, v in env.items() if k.startswith(envvars.PREFIX)}
        assert tone_vars, name
        assert set(tone_vars) <= known, set(tone_vars) - known
        # the values must pass the same validation the code applies
        by_field = {
            f: tone_vars[info.validation_alias]
            for f, info in Settings.model_fields.items()
            if info.validation_alias in tone_vars
        }
        loaded = load_settings(**by_field)  # raises ConfigError, naming the variable, on a value the code refuses
        assert len(by_field) == len(tone_vars)  # every TONE_ variable is a setting's
        assert all(getattr(loaded, f) is not None for f in by_field), "a value that took no effect"


def test_ports_match_the_default_client_addresses():
    kafka_port = DEFAULTS.bootstrap_list[0].rsplit(":", 1)[1]
    assert f"{kafka_port}:{kafka_port}" in COMPOSE["services"]["kafka"]["ports"]
    advertised = COMPOSE["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"EXTERNAL://{DEFAULTS.bootstrap_list[0]}" in advertised
    redis_port = urlparse(DEFAULTS.redis_url).port
    assert f"{redis_port}:{redis_port}" in COMPOSE["services"]["redis"]["ports"]


def test_containers_reach_the_broker_and_redis_by_service_name():
    env = _env_vars(COMPOSE["services"]["stream"])
    internal = COMPOSE["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"INTERNAL://{env[envvars.KAFKA_BOOTSTRAP_SERVERS]}" in internal
    assert urlparse(env[envvars.REDIS_URL]).hostname == "redis"


def test_topics_created_match_the_settings():
    script = COMPOSE["services"]["kafka-init"]["command"][0]
    env = _env_vars(COMPOSE["services"]["stream"])
    partitions = env[envvars.KAFKA_PARTITIONS]
    assert f"--topic {env[envvars.KAFKA_TOPIC_TWEETS]} --partitions {partitions}" in script
    assert f"--topic {env[envvars.KAFKA_TOPIC_DLQ]} " in script
    assert f"--topic {env[envvars.KAFKA_TOPIC_SCORED]} " in script
    assert env[envvars.KAFKA_TOPIC_TWEETS] == DEFAULTS.kafka_topic_tweets
    assert int(partitions) == DEFAULTS.kafka_partitions


def test_app_services_run_real_tone_commands_with_known_options():
    import typer.main

    from tone_cli.main import app

    group = typer.main.get_command(app)
    for name in ("producer", "stream", "api"):
        args = COMPOSE["services"][name]["command"]
        command = group.commands[args[0]]  # KeyError: the compose file names a command tone does not have
        known = {opt for param in command.params for opt in getattr(param, "opts", [])}
        flags = [a for a in args[1:] if a.startswith("--")]
        assert set(flags) <= known, (name, set(flags) - known)


def test_compose_runs_the_kafka_version_the_local_stack_runs():
    from tone.jars import KAFKA_VERSION

    images = {COMPOSE["services"][name]["image"] for name in ("kafka", "kafka-init")}
    assert images == {f"apache/kafka:{KAFKA_VERSION}"}


def test_the_observability_profile_scrapes_the_stream_and_the_api():
    services = COMPOSE["services"]
    assert services["prometheus"]["profiles"] == ["observability"]
    assert services["grafana"]["profiles"] == ["observability"]
    prometheus = yaml.safe_load((ROOT / "observability" / "prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    stream_env = _env_vars(services["stream"])
    assert f"stream:{stream_env[envvars.METRICS_PORT]}" in targets
    assert stream_env[envvars.METRICS_HOST] == "0.0.0.0"  # reachable from Prometheus's container
    api_port = services["api"]["command"][services["api"]["command"].index("--port") + 1]
    assert f"api:{api_port}" in targets
    for mount in services["grafana"]["volumes"]:
        assert (ROOT / mount.split(":")[0]).exists(), mount


def test_every_metric_the_dashboard_queries_is_one_the_code_exports():
    import json
    import re

    from serving.metrics import ApiMetrics
    from streaming.monitor import StreamMetrics

    exported = set()
    for registry in (StreamMetrics().registry, ApiMetrics().registry):
        for family in registry.collect():
            exported.add(family.name)
            exported.update(sample.name for sample in family.samples)
    # families whose samples only exist once a value was set still carry their suffixed names in text format
    exported |= {f"{name}{suffix}" for name in exported for suffix in ("_total", "_bucket", "_count", "_sum", "_info")}
    dashboard = json.loads((ROOT / "observability" / "grafana" / "dashboards" / "tone.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\btone_[a-z_]+", target["expr"])
    }
    assert queried, "the dashboard queries no tone_ metric"
    assert not queried - exported, f"the dashboard queries metrics the code does not export: {queried - exported}"
    titles = {panel["title"] for panel in dashboard["panels"]}
    for needed in (
        "Records per second",
        "Lag (records not counted yet)",
        "Produce -> Redis latency",
        "Dead letters by reason",
        "Model version",
        "Tone timeline (scored tweets per minute by label)",
        "Tone shifts by tag, late tweets",
    ):
        assert needed in titles


def test_the_cluster_profile_has_the_shape_of_the_cluster_stack():
    import base64

    services = COMPOSE["services"]
    cluster = {name for name, svc in services.items() if svc.get("profiles") == ["cluster"]}
    kafka = sorted(n for n in cluster if n.startswith("kafka-") and n[-1].isdigit())
    redis = sorted(n for n in cluster if n.startswith("redis-") and n[-1].isdigit())
    workers = sorted(n for n in cluster if n.startswith("spark-worker-"))
    assert (len(kafka), len(redis), len(workers)) == (3, 9, 2)
    # One KRaft quorum of the three nodes, each with its own id and address, one valid cluster id.
    envs = [services[n]["environment"] for n in kafka]
    assert sorted(e["KAFKA_NODE_ID"] for e in envs) == [1, 2, 3]
    voters = {e["KAFKA_CONTROLLER_QUORUM_VOTERS"] for e in envs}
    assert voters == {",".join(f"{e['KAFKA_NODE_ID']}@{n}:9093" for n, e in zip(kafka, envs, strict=True))}
    assert all(e["KAFKA_ADVERTISED_LISTENERS"] == f"INTERNAL://{n}:19092" for n, e in zip(kafka, envs, strict=True))
    (cluster_id,) = {e["CLUSTER_ID"] for e in envs}
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    assert all(e["KAFKA_MIN_INSYNC_REPLICAS"] == 2 and e["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 3 for e in envs)
    topics = services["kafka-cluster-init"]["command"][0]
    assert "--replication-factor 3 --config min.insync.replicas=2" in topics
    # Nine Redis nodes in cluster mode, made one cluster of 3 masters with 2 replicas each.
    assert all("--cluster-enabled" in services[n]["command"] for n in redis)
    init = services["redis-cluster-init"]["command"][0]
    assert "--cluster-replicas 2" in init and "for n in 1 2 3 4 5 6 7 8 9" in init
    # The stream on all of it, with settings the code accepts.
    env = {k: str(v) for k, v in _env_vars(services["stream-cluster"]).items()}
    by_field = {f: env[i.validation_alias] for f, i in Settings.model_fields.items() if i.validation_alias in env}
    s = load_settings(**by_field)
    assert sorted(s.bootstrap_list) == [f"{n}:19092" for n in kafka]
    assert s.redis_cluster and all(urlparse(u).hostname in redis for u in s.redis_url.split(","))
    master = services["spark-master"]["command"][0]
    assert s.spark_master == "spark://spark-master:7077" and "--port 7077" in master
    assert all(s.spark_master in services[w]["command"][0] for w in workers)
    assert s.spark_driver_host == "stream-cluster" and s.spark_driver_bind_address == "0.0.0.0"
