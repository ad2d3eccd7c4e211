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


def test_a_three_broker_stack_is_one_quorum_on_interleaved_ports(tmp_path):
    stack = LocalStack(
        load_settings(
            stack_dir=tmp_path / "c", stack_kafka_port=19092, stack_kafka_controller_port=19093, stack_kafka_brokers=3
        )
    )
    assert [n.name for n in stack.kafka] == ["kafka-1", "kafka-2", "kafka-3"]
    assert stack.bootstrap == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    props = [dict(line.split("=", 1) for line in n.properties().splitlines()) for n in stack.kafka]
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    voters = "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    assert {p["controller.quorum.voters"] for p in props} == {voters}
    assert props[2]["listeners"] == "PLAINTEXT://127.0.0.1:19096,CONTROLLER://127.0.0.1:19097"
    assert len({p["log.dirs"] for p in props}) == 3
    assert {p["transaction.state.log.replication.factor"] for p in props} == {"3"}
    assert {p["min.insync.replicas"] for p in props} == {"2"}


def test_broker_and_controller_ports_that_collide_are_refused_naming_both_settings(tmp_path):
    import pytest

    from tone.errors import StackError

    settings = load_settings(
        stack_dir=tmp_path / "x", stack_kafka_port=19092, stack_kafka_controller_port=19094, stack_kafka_brokers=3
    )
    with pytest.raises(StackError, match="TONE_STACK_KAFKA_PORT and TONE_STACK_KAFKA_CONTROLLER_PORT"):
        LocalStack(settings)


def test_a_redis_cluster_stack_has_nine_nodes_and_tells_clients_all_of_them(tmp_path):
    import pytest

    from tone.errors import StackError

    stack = LocalStack(load_settings(stack_dir=tmp_path / "r", stack_redis_port=17000, stack_redis_cluster=True))
    assert [n.port for n in stack.redis.nodes] == list(range(17000, 17009))
    assert all(n.other_ports() == (n.port + 10000,) for n in stack.redis.nodes)
    cmd, _ = stack.redis.nodes[1].command()
    assert cmd[cmd.index("--cluster-enabled") + 1] == "yes"
    env = stack.client_env()
    seeds = ",".join(f"redis://127.0.0.1:{p}/0" for p in range(17000, 17009))
    assert env["TONE_REDIS_CLUSTER"] == "1" and env["TONE_REDIS_URL"] == seeds
    assert stack.client_settings().redis_cluster
    with pytest.raises(StackError, match="TONE_STACK_SECURE"):
        LocalStack(load_settings(stack_dir=tmp_path / "s", stack_redis_cluster=True, stack_secure=True))
