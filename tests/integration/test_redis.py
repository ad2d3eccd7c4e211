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
