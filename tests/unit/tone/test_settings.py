import pytest
from pydantic import SecretStr, ValidationError

from tone import envvars
from tone.errors import ConfigError
from tone.settings import Settings, allowed_values, env_name, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in dir(envvars):
        if name.isupper() and name != "PREFIX":
            monkeypatch.delenv(getattr(envvars, name), raising=False)


def test_defaults():
    s = load_settings()
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert s.kafka_topic_tweets == "tweets"
    assert s.kafka_topic_dlq == "tweets.dlq"
    assert s.kafka_partitions == 4
    assert s.kafka_source == "python"
    assert s.stack_kafka_controller_port == 9093


def test_every_field_is_set_by_a_variable_named_in_envvars():
    names = {getattr(envvars, n) for n in dir(envvars) if n.isupper()}
    for field in Settings.model_fields:
        assert env_name(field) in names, field
        assert env_name(field).startswith(envvars.PREFIX)


def test_env_vars_are_read(monkeypatch):
    monkeypatch.setenv(envvars.KAFKA_PARTITIONS, "8")
    monkeypatch.setenv(envvars.KAFKA_BOOTSTRAP_SERVERS, " a:1 , b:2 ")
    monkeypatch.setenv(envvars.KAFKA_SOURCE, "native")
    s = load_settings()
    assert s.kafka_partitions == 8
    assert s.bootstrap_list == ["a:1", "b:2"]
    assert s.kafka_source == "native"


def test_frozen():
    s = load_settings()
    with pytest.raises(ValidationError, match="frozen"):
        s.kafka_partitions = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        (envvars.KAFKA_PARTITIONS, "abc", "an integer >= 1 <= 1024"),
        (envvars.KAFKA_PARTITIONS, "0", "an integer >= 1 <= 1024"),
        (envvars.KAFKA_SECURITY_PROTOCOL, "TLS", "one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
        (envvars.KAFKA_SOURCE, "spark", "one of python, native"),
        (envvars.KAFKA_BOOTSTRAP_SERVERS, "localhost", "host:port"),
        (envvars.REDIS_URL, "http://x:6379", "redis://"),
        (envvars.AWS_ENDPOINT_URL, "localhost:5000", "http(s) URL"),
        (envvars.LOG_LEVEL, "LOUD", "one of DEBUG, INFO, WARNING, ERROR"),
        (envvars.TRANSFORMER_BACKEND, "tensorrt", "one of auto, torch, onnx"),
        (envvars.ONNX_PRECISION, "int4", "one of auto, fp32, int8"),
        (envvars.SCORER_TOKEN_BUDGET, "-1", "an integer >= 0"),
        (envvars.CHECKPOINT_DIR, "s3a://bucket/ckpt", "a directory on the driver's disk"),
        (envvars.CHECKPOINT_DIR, "hdfs://nn:8020/ckpt", "not supported"),
    ],
)
def test_bad_value_names_the_setting_and_what_is_allowed(monkeypatch, var, value, expected):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    text = str(err.value)
    assert var in text
    assert repr(value) in text
    assert expected in text


def test_all_bad_values_are_reported_together(monkeypatch):
    monkeypatch.setenv(envvars.KAFKA_PARTITIONS, "x")
    monkeypatch.setenv(envvars.LOG_LEVEL, "x")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert envvars.KAFKA_PARTITIONS in str(err.value)
    assert envvars.LOG_LEVEL in str(err.value)


def test_secrets_are_masked(monkeypatch):
    monkeypatch.setenv(envvars.REDIS_PASSWORD, "hunter2")
    monkeypatch.setenv(envvars.KAFKA_SASL_PASSWORD, "s3cret")
    monkeypatch.setenv(envvars.X_BEARER_TOKEN, "bearer-9f8e")
    s = load_settings()
    assert isinstance(s.redis_password, SecretStr)
    dumped = repr(s) + str(s.model_dump())
    for secret in ("hunter2", "s3cret", "bearer-9f8e"):
        assert secret not in dumped
    assert s.redis_password.get_secret_value() == "hunter2"


def test_allowed_values_describes_each_kind():
    assert allowed_values("kafka_sasl_mechanism") == "one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
    assert allowed_values("stack_kafka_port") == "an integer >= 1 <= 65535"
    assert allowed_values("redis_password") == "a secret string"


def test_the_spark_connector_matches_the_installed_pyspark():
    import importlib.metadata

    from tone.jars import spark_kafka_connector, spark_kafka_package

    version = importlib.metadata.version("pyspark")
    assert spark_kafka_connector().version == version
    assert spark_kafka_package() == f"org.apache.spark:spark-sql-kafka-0-10_2.13:{version}"


def test_a_checkpoint_dir_is_a_local_path_and_file_uris_are_read_as_one(monkeypatch, tmp_path):
    monkeypatch.setenv(envvars.CHECKPOINT_DIR, f"file://{tmp_path}/ckpt")
    assert load_settings().checkpoint_dir == tmp_path / "ckpt"
    monkeypatch.setenv(envvars.CHECKPOINT_DIR, str(tmp_path / "a:b"))  # a colon inside a path is a path
    assert load_settings().checkpoint_dir == tmp_path / "a:b"
