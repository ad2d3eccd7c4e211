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
    ):
        assert needed in titles
