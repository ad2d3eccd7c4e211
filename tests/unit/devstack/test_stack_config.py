"""The local stack's generated Kafka configuration, without starting anything."""

from devstack.stack import LocalStack, kafka_cluster_id
from tone.settings import load_settings


def test_cluster_ids_are_kraft_ids_that_no_command_line_mistakes_for_an_option():
    # base64url may begin with "-": the storage tool then read the id as an option and refused to format
    ids = [kafka_cluster_id() for _ in range(500)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == 500


def test_broker_properties_plain_and_secure(tmp_path):
    plain = LocalStack(
        load_settings(stack_dir=tmp_path / "p", stack_kafka_port=19092, stack_kafka_controller_port=19093)
    )
    props = dict(line.split("=", 1) for line in plain.kafka_properties().splitlines())
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["process.roles"] == "broker,controller"
    assert props["log.dirs"].startswith(str(tmp_path / "p"))

    from devstack.tls import ensure_secrets

    secure = LocalStack(load_settings(stack_dir=tmp_path / "s", stack_secure=True))
    ensure_secrets(secure.secrets.directory)
    props = dict(line.split("=", 1) for line in secure.kafka_properties().splitlines())
    assert props["listeners"].startswith("SASL_SSL://127.0.0.1:")
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["ssl.keystore.type"] == "PEM"
