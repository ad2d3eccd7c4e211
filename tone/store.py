"""Per-user tone aggregates in Redis: one atomic, idempotent write per micro-batch, and the lookups.

Key layout (prefix ``tone:`` by default):

- ``tone:user:{id}`` (hash): ``n``; ``count:{label}``; ``prob_sum:{label}`` (mean = sum / n); ``polarity_sum``;
  ``ewma_s``, ``ewma_w``, ``ewma_t`` (event-time EWMA of polarity, see :mod:`tone.aggregate`); ``first_seen``,
  ``last_seen`` (epoch seconds);
- ``tone:user:{id}:recent`` (list): the last K scored tweets, newest first (JSON);
- ``tone:user:{id}:h:{YYYYMMDDHH}`` (hash): label counts in that UTC hour; expires after the bucket TTL;
- ``tone:top:negative`` / ``tone:top:positive`` (sorted sets): user id -> mean p(negative) / mean p(positive), for
  users with at least the minimum count;
- ``tone:applied:{query}:{topic}:{partition}`` (string): the last Kafka offset whose tweets are counted.

Exactly once: each write covers one Kafka partition's offset range [start, end] (the stream's tasks map 1:1 onto
them). The Lua script applies it only if ``start`` is past the stored last-applied offset, and stores ``end`` in the
same atomic step, so a range replayed after a crash changes nothing, whatever the batch boundaries were.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tone.aggregate import Ewma, UserDelta
from tone.labels import NEGATIVE, POSITIVE

if TYPE_CHECKING:
    import redis

APPLY_BATCH = r"""
local applied_key = KEYS[1]
local start_offset = tonumber(ARGV[1])
local end_offset = tonumber(ARGV[8])
local last = tonumber(redis.call('GET', applied_key) or '-1')
if start_offset <= last then return 0 end
local users = cjson.decode(ARGV[2])
local half_life = tonumber(ARGV[3])
local recent_k = tonumber(ARGV[4])
local min_count = tonumber(ARGV[5])
local bucket_ttl = tonumber(ARGV[6])
local prefix = ARGV[7]
for _, u in ipairs(users) do
  local key = prefix .. 'user:' .. u.id
  local n = redis.call('HINCRBY', key, 'n', u.n)
  for label, c in pairs(u.counts) do redis.call('HINCRBY', key, 'count:' .. label, c) end
  for label, s in pairs(u.prob_sums) do redis.call('HINCRBYFLOAT', key, 'prob_sum:' .. label, s) end
  redis.call('HINCRBYFLOAT', key, 'polarity_sum', u.polarity_sum)
  local old = redis.call('HMGET', key, 'ewma_s', 'ewma_w', 'ewma_t', 'first_seen', 'last_seen')
  local s, w, t = u.ewma_s, u.ewma_w, u.ewma_t
  if old[2] and tonumber(old[2]) > 0 then
    local os, ow, ot = tonumber(old[1]), tonumber(old[2]), tonumber(old[3])
    local tt = math.max(ot, t)
    local a = math.pow(0.5, (tt - ot) / half_life)
    local b = math.pow(0.5, (tt - t) / half_life)
    s, w, t = os * a + s * b, ow * a + w * b, tt
  end
  local first = u.first_seen
  if old[4] then first = math.min(first, tonumber(old[4])) end
  local lastseen = u.last_seen
  if old[5] then lastseen = math.max(lastseen, tonumber(old[5])) end
  redis.call('HSET', key, 'ewma_s', tostring(s), 'ewma_w', tostring(w), 'ewma_t', tostring(t),
             'first_seen', tostring(first), 'last_seen', tostring(lastseen))
  for i = #u.recent, 1, -1 do redis.call('LPUSH', key .. ':recent', cjson.encode(u.recent[i])) end
  redis.call('LTRIM', key .. ':recent', 0, recent_k - 1)
  for hour, counts in pairs(u.hourly) do
    local hkey = key .. ':h:' .. hour
    for label, c in pairs(counts) do redis.call('HINCRBY', hkey, label, c) end
    redis.call('EXPIRE', hkey, bucket_ttl)
  end
  for _, label in ipairs({'negative', 'positive'}) do
    local zkey = prefix .. 'top:' .. label
    if n >= min_count then
      local sum = tonumber(redis.call('HGET', key, 'prob_sum:' .. label) or '0')
      redis.call('ZADD', zkey, sum / n, u.id)
    else
      redis.call('ZREM', zkey, u.id)
    end
  end
end
redis.call('SET', applied_key, end_offset)
return 1
"""


@dataclass(frozen=True)
class StoreConfig:
    """Aggregation parameters (from settings)."""

    prefix: str = "tone:"
    half_life_s: float = 3600.0
    recent_k: int = 20
    top_min_count: int = 5
    bucket_ttl_s: int = 7 * 24 * 3600


class ToneStore:
    """Read and write per-user aggregates."""

    def __init__(self, client: redis.Redis, config: StoreConfig | None = None) -> None:
        """Wrap a redis-py client (decode_responses=False)."""
        self.client: Any = client  # redis-py's return types are unions of sync/async shapes; we use sync bytes
        self.config = config or StoreConfig()
        self._apply = client.register_script(APPLY_BATCH)

    @classmethod
    def from_url(cls, url: str, password: str | None = None, config: StoreConfig | None = None) -> ToneStore:
        """Connect by URL."""
        import redis

        return cls(redis.Redis.from_url(url, password=password), config)

    def apply_range(
        self, query: str, topic: str, partition: int, start: int, end: int, deltas: Sequence[UserDelta]
    ) -> bool:
        """Apply the tweets of offsets [start, end] of one partition atomically; False if already applied."""
        if end < start:
            msg = f"offset range [{start}, {end}] is empty"
            raise ValueError(msg)
        c = self.config
        payload = json.dumps([d.to_wire() for d in deltas], allow_nan=False)
        applied = self._apply(
            keys=[f"{c.prefix}applied:{query}:{topic}:{partition}"],
            args=[start, payload, c.half_life_s, c.recent_k, c.top_min_count, c.bucket_ttl_s, c.prefix, end],
        )
        return bool(applied)

    def last_offset(self, query: str, topic: str, partition: int) -> int | None:
        """Last Kafka offset of ``topic``/``partition`` whose tweets ``query`` has counted."""
        value = self.client.get(f"{self.config.prefix}applied:{query}:{topic}:{partition}")
        return int(value) if value is not None else None

    def user(self, user_id: str) -> dict[str, Any] | None:
        """A user's aggregates, or None for an unknown user."""
        key = f"{self.config.prefix}user:{user_id}"
        raw = {k.decode(): v.decode() for k, v in self.client.hgetall(key).items()}
        if not raw:
            return None
        n = int(raw.get("n", 0))
        counts = {k.split(":", 1)[1]: int(v) for k, v in raw.items() if k.startswith("count:")}
        means = {k.split(":", 1)[1]: float(v) / n for k, v in raw.items() if k.startswith("prob_sum:") and n}
        ewma = Ewma(float(raw.get("ewma_s", 0)), float(raw.get("ewma_w", 0)), float(raw.get("ewma_t", "-inf")))
        recent = [json.loads(r) for r in self.client.lrange(f"{key}:recent", 0, -1)]
        label = max(counts, key=lambda k: counts[k]) if counts else None
        return {
            "user_id": user_id,
            "n": n,
            "counts": counts,
            "mean_probs": means,
            "mean_polarity": float(raw.get("polarity_sum", 0)) / n if n else 0.0,
            "ewma_polarity": ewma.value(),
            "dominant_label": label,
            "first_seen": float(raw["first_seen"]) if "first_seen" in raw else None,
            "last_seen": float(raw["last_seen"]) if "last_seen" in raw else None,
            "recent": recent,
        }

    def hourly(self, user_id: str, hour: str) -> dict[str, int]:
        """Label counts of one UTC hour bucket (``YYYYMMDDHH``)."""
        key = f"{self.config.prefix}user:{user_id}:h:{hour}"
        return {k.decode(): int(v) for k, v in self.client.hgetall(key).items()}

    def top(self, by: str, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` users with the highest mean p(``by``), ``by`` being negative or positive."""
        if by not in (NEGATIVE, POSITIVE):
            msg = f"by must be {NEGATIVE} or {POSITIVE}, got {by!r}"
            raise ValueError(msg)
        rows = self.client.zrevrange(f"{self.config.prefix}top:{by}", 0, n - 1, withscores=True)
        return [(member.decode(), float(score)) for member, score in rows if math.isfinite(score)]
