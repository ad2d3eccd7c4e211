import pytest
import redis

pytestmark = pytest.mark.integration


def test_redis_round_trip(settings):
    client = redis.Redis.from_url(settings.redis_url)
    try:
        client.hset("tone:test:user", mapping={"positive": 3, "negative": 1})
        client.hincrby("tone:test:user", "positive", 2)
        assert client.hgetall("tone:test:user") == {b"positive": b"5", b"negative": b"1"}
        client.zadd("tone:test:top", {"a": 0.5, "b": -0.2})
        assert client.zrange("tone:test:top", 0, -1) == [b"b", b"a"]
    finally:
        client.delete("tone:test:user", "tone:test:top")
        client.close()


def test_a_wait_for_replicas_that_are_not_there_is_refused_before_anything_is_written(spark, isolated, tmp_path):
    """TONE_REDIS_WAIT_REPLICAS=1 on a Redis with no replica: every apply would write its counts and then fail
    WAIT, and the query stop after its restarts with some users counted (measured on a replica-less cluster)."""
    import redis as redis_py

    from streaming.job import ToneStream
    from tests.integration.test_stream import events, produce
    from tone.errors import ConfigError

    s = isolated.model_copy(update={"redis_wait_replicas": 1})
    produce(s, events(0, 50))
    job = ToneStream(s, scorer="vader", checkpoint=tmp_path / "ckpt", query_name="q", trigger_seconds=0.5)
    with pytest.raises(ConfigError, match=r"TONE_REDIS_WAIT_REPLICAS=1.*has 0.*TONE_REDIS_WAIT_REPLICAS=0"):
        job.run(spark, until_idle=5)
    client = redis_py.Redis.from_url(s.redis_url)
    assert list(client.scan_iter(f"{s.redis_key_prefix}*")) == []  # nothing written
    client.close()
