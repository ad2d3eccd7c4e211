"""One Kafka connection model rendered in each client's dialect (tone/kafka/config.py)."""

import pytest

from tone import envvars
from tone.kafka.config import PRODUCER_DEFAULTS, KafkaConnection, kafka_python_names
from tone.settings import load_settings

SASL = KafkaConnection(("a:1", "b:2"), "SASL_SSL", "PLAIN", "u", 'p"w\\d')


def test_librdkafka_config_maps_security_options():
    out = SASL.librdkafka()
    assert out["bootstrap.servers"] == "a:1,b:2"
    assert (out["security.protocol"], out["sasl.mechanism"]) == ("SASL_SSL", "PLAIN")
    assert (out["sasl.username"], out["sasl.password"]) == ("u", 'p"w\\d')


def test_spark_options_carry_credentials_in_the_jaas_config_and_round_trip():
    options = SASL.spark_options()
    assert options["kafka.bootstrap.servers"] == "a:1,b:2"
    assert options["kafka.sasl.jaas.config"].startswith("org.apache.kafka.common.security.plain.PlainLoginModule")
    # the stream passes its settings' connection to the source as kafka.* options: nothing lost on the way
    assert KafkaConnection.from_options(options) == SASL
    scram = KafkaConnection(("h:1",), "SASL_PLAINTEXT", "SCRAM-SHA-512", "svc", "pw")
    assert "ScramLoginModule" in scram.spark_options()["kafka.sasl.jaas.config"]
    assert KafkaConnection.from_options({k.upper(): v for k, v in scram.spark_options().items()}) == scram


def test_the_password_never_shows_in_repr_or_cache_key():
    assert 'p"w' not in repr(SASL)
    assert 'p"w' not in SASL.cache_key()
    assert SASL.cache_key() != KafkaConnection(("a:1", "b:2"), "SASL_SSL", "PLAIN", "u", "other").cache_key()


def test_one_producer_defaults_table_in_both_dialects():
    names = kafka_python_names(PRODUCER_DEFAULTS)
    assert names["linger_ms"] == PRODUCER_DEFAULTS["linger.ms"]
    assert names["acks"] == "all"
    assert names["max_in_flight_requests_per_connection"] == 5
    assert names["enable_idempotence"] is True  # a retried send is never written twice


def test_sasl_config_reaches_kafka_clients(monkeypatch):
    monkeypatch.setenv(envvars.KAFKA_SECURITY_PROTOCOL, "SASL_SSL")
    monkeypatch.setenv(envvars.KAFKA_SASL_MECHANISM, "SCRAM-SHA-512")
    monkeypatch.setenv(envvars.KAFKA_SASL_USERNAME, "svc")
    monkeypatch.setenv(envvars.KAFKA_SASL_PASSWORD, "pw")
    conn = KafkaConnection.from_settings(load_settings())
    config = conn.kafka_python()
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert config["sasl_plain_password"] == "pw"
    rd = conn.librdkafka()  # the workers' confluent-kafka clients get the same, renamed
    assert (rd["security.protocol"], rd["sasl.mechanism"], rd["sasl.username"], rd["sasl.password"]) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
        "svc",
        "pw",
    )


def test_bootstrap_servers_are_required():
    with pytest.raises(ValueError, match="kafka.bootstrap.servers"):
        KafkaConnection.from_options({"kafka.bootstrap.servers": " , "})


def test_a_ca_file_reaches_every_dialect():
    conn = KafkaConnection(("h:1",), "SASL_SSL", "SCRAM-SHA-512", "u", "p", "/secrets/ca.pem")
    assert conn.kafka_python()["ssl_cafile"] == "/secrets/ca.pem"
    assert conn.librdkafka()["ssl.ca.location"] == "/secrets/ca.pem"
    options = conn.spark_options()
    assert (options["kafka.ssl.truststore.type"], options["kafka.ssl.truststore.location"]) == (
        "PEM",
        "/secrets/ca.pem",
    )
    assert KafkaConnection.from_options(options) == conn


def test_replication_follows_the_cluster_size_unless_set():
    from tone.errors import ToneError
    from tone.kafka.admin import Replication

    assert Replication().resolve(1) == (1, 1)
    assert Replication().resolve(2) == (2, 1)
    assert Replication().resolve(5) == (3, 2)  # RF 3, min.insync 2: acks=all survives one broker's loss
    assert Replication(2, 2).resolve(3) == (2, 2)
    with pytest.raises(ToneError, match=r"TONE_KAFKA_REPLICATION_FACTOR=3 needs at least 3 brokers; the cluster has 1"):
        Replication(3).resolve(1)
    with pytest.raises(ToneError, match="TONE_KAFKA_MIN_INSYNC_REPLICAS=3 exceeds the replication factor 2"):
        Replication(2, 3).resolve(3)
