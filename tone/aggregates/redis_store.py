"""The Redis store: one atomic, idempotent, all-or-nothing write per Kafka offset range, and the lookups.

Key layout (prefix ``tone:`` by default; ``{k}`` is the user id through ``store.key_part``: characters other than
``A-Za-z0-9_.@-`` as ``%XX`` of their UTF-8 bytes, so no id can spell another key):

- ``tone:user:{k}`` (hash): ``n`` (every counted tweet); ``scored`` (those a route scored; absent: all of ``n``);
  ``lang:{code}`` (counted tweets by language); ``count:{label}``; ``prob_sum:{label}`` (mean = sum / scored);
  ``polarity_sum``;
  ``ewma_s``, ``ewma_w``, ``ewma_t`` (event-time EWMA of polarity, see :mod:`tone.aggregates.deltas`); ``first_seen``,
  ``last_seen`` (epoch seconds);
- ``tone:user:{k}:recent`` (list): the last K counted tweets, newest first (JSON; an unscored one has no label);
- ``tone:user:{k}:ids`` (hash), for ``TONE_DEDUPE_HORIZON_S``: tweet id -> when it was counted (Redis's clock), a
  space and the tweet's contribution (:meth:`~tone.aggregates.deltas.Scored.contribution`, for a deletion to take
  back out), or the time alone for a deleted tweet's id; expires with the horizon after the user's last write, and
  is trimmed of ids past it whenever it has doubled since the last trim (field ``NUL trim``: about how many it kept);
- ``tone:user:{k}:forgotten`` (string): when the user was erased (``forget``); their older tweets stay out;
- ``tone:user:{k}:h:{YYYYMMDDHH}`` (hash): label counts in that UTC hour; expires after the bucket TTL;
- ``tone:top:negative`` / ``tone:top:positive`` (sorted sets): user id (as is) -> mean p(negative) / mean
  p(positive) over their scored tweets, for users with at least the minimum count of scored tweets;
- ``tone:applied:{query}:{topic}:{partition}`` (string): the last Kafka offset whose tweets are counted; no TTL.

A user's hash and recent list expire ``TONE_USER_TTL_S`` after their last counted tweet; their top-N entries are
left out when read (``top`` reads only) and removed by the sweep after each batch (``prune_top``). The braces keep
one user's keys together: they are Redis Cluster hash tags, and the cluster store
(:mod:`tone.aggregates.redis_cluster`) runs this script once per slot's part of a step.

Exactly once (see :mod:`tone.aggregates.store`): the Lua script applies one step only if its first offset is past
the stored marker, and stores the step's end in the same atomic step; :func:`~tone.aggregates.store.count_records`
makes that exact per record. All or nothing: Redis does not roll back a script that fails after it
wrote, so the script checks every key's type and every number it will add to before its first write (counts are
integers, sums and times finite numbers), and refuses the whole range (naming the key and field) if one is wrong.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tone.aggregates.deltas import UserDelta, hour_bucket, tags_of_contributions
from tone.aggregates.shadow import FLIPS_KEPT, StepEvidence, evidence_view
from tone.aggregates.store import (
    TAG_RANKS,
    Step,
    StoreConfig,
    check_range,
    check_ranked,
    check_tag_rank,
    finite_top,
    key_part,
    tag_view,
    user_view,
)
from tone.errors import ConfigError, ServiceError
from tone.labels import RANKED_LABELS
from tone.retry import with_retries

if TYPE_CHECKING:
    import redis

    from tone.settings import Settings

APPLY_BATCH = r"""
local applied_key = KEYS[1]
local start_offset = tonumber(ARGV[1])
local end_offset = tonumber(ARGV[8])
local half_life = tonumber(ARGV[3])
local recent_k = tonumber(ARGV[4])
local min_count = tonumber(ARGV[5])
local bucket_ttl = tonumber(ARGV[6])
local prefix = ARGV[7]
local ranked = cjson.decode(ARGV[9])
local user_ttl = tonumber(ARGV[10])
-- 1: the top-N sets are written here; 0 (Redis Cluster: they live in other slots): each user's n and sums are
-- returned for the caller to write them.
local top_here = ARGV[11] == '1'
-- A tweet id counts once within this many seconds of its counting (0: no dedupe); times are the server's clock.
local horizon = tonumber(ARGV[12])
local users = cjson.decode(ARGV[2])
-- Shadow evidence (tone.aggregates.shadow): counters added to the hash ARGV[13] (in this step's slot) and flipped
-- tweets pushed to its list, kept to the newest ARGV[15]; '' when the step has none.
local evidence_key = ARGV[13]
local flips_kept = tonumber(ARGV[15])
-- Tags (``u.tag``; the stream is the tag '*'): their keys expire ARGV[16] s after their last tweet. The stream keeps
-- each input partition's event time (its latest tweet: field 'wm:' .. u.wm); a tweet of a minute that ended more than
-- ARGV[17] s before its partition's event time is late: counted, and added to the stream's 'late'.
local tag_ttl = tonumber(ARGV[16])
-- A tag with fewer than ARGV[18] tweets is on probation: its keys expire ARGV[19] s after its last tweet and it is
-- not ranked (spam makes millions of tags of a tweet or two each: they cost memory for that long only).
local tag_min = tonumber(ARGV[18])
local probation = tonumber(ARGV[19])
local tag_recent_k = tonumber(ARGV[20])  -- a tag keeps this many recent tweets (the stream none)
local lateness = tonumber(ARGV[17])
local function key_of(u)
  if u.tag then return prefix .. 'tag:{' .. u.key .. '}' end
  return prefix .. 'user:{' .. u.key .. '}'
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
local stamp = string.format('%.17g', now)
local TRIM = '\0trim'  -- not a tweet id: ids hold no control characters (tone.events)
-- Commands over long lists in slices (Lua's unpack has a limit of a few thousand values).
local function call_sliced(command, key, values, width)
  for i = 1, #values, 2000 * width do
    redis.call(command, key, unpack(values, i, math.min(#values, i + 2000 * width - 1)))
  end
end

-- 1. Check everything before the first write: Redis keeps the writes of a script that fails half-way.
local function expect_type(key, kind)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= kind then
    return redis.error_reply('refused, nothing written: ' .. key .. ' holds a ' .. t .. ', expected a ' .. kind)
  end
end
-- Counts are integers (HINCRBY and '%d' need them: tonumber alone takes '1.5', 'nan' and 'inf'), at most 15
-- digits so a double holds them exactly; sums, EWMA terms and times are finite numbers.
local function is_count(field)
  return field == 'n' or field == 'scored' or field:sub(1, 6) == 'count:' or field:sub(1, 5) == 'lang:'
end
local function number_of(v, count)
  if count then
    if #v > 16 or not string.match(v, '^%-?%d+$') then return nil end
    return tonumber(v)
  end
  local x = tonumber(v)
  if x == nil or x ~= x or x == math.huge or x == -math.huge then return nil end
  return x
end
-- The fields' values as numbers (field -> number; a missing field is absent), or an error if one is not the number
-- its write needs (``counts``: every field is a count, else as is_count says).
local function expect_numbers(key, fields, counts)
  -- pcall: a key of another type is an error reply here, before any write (so a hash needs no TYPE first).
  local values = redis.pcall('HMGET', key, unpack(fields))
  if values.err then return redis.error_reply('refused, nothing written: ' .. key .. ': ' .. values.err) end
  local numbers = {}
  for i, v in ipairs(values) do
    if v then
      numbers[fields[i]] = number_of(v, counts or is_count(fields[i]))
      if not numbers[fields[i]] then
        return redis.error_reply('refused, nothing written: ' .. key .. ' field ' .. fields[i] .. ' holds ' ..
          string.sub(v, 1, 40) .. ', not ' .. ((counts or is_count(fields[i])) and 'an integer' or 'a finite number'))
      end
    end
  end
  return nil, numbers
end
local err = expect_type(applied_key, 'string')
if err then return err end
local last = tonumber(redis.call('GET', applied_key) or '-1')
if not last then return redis.error_reply('refused, nothing written: ' .. applied_key .. ' is not an offset') end
if start_offset <= last then return 0 end
local evidence = nil
if evidence_key ~= '' then
  evidence = cjson.decode(ARGV[14])
  err = expect_type(evidence_key, 'hash') or expect_type(evidence_key .. ':flips', 'list')
  if err then return err end
  local counts, sums = {}, {}
  for f, _ in pairs(evidence.counts) do table.insert(counts, f) end
  for f, _ in pairs(evidence.sums) do table.insert(sums, f) end
  if #counts > 0 then err = expect_numbers(evidence_key, counts, true) end
  if err then return err end
  if #sums > 0 then err = expect_numbers(evidence_key, sums, false) end
  if err then return err end
end
if top_here then
  for _, label in ipairs(ranked) do
    err = expect_type(prefix .. 'top:' .. label, 'zset')
    if err then return err end
  end
end
for _, u in ipairs(users) do
  local key = key_of(u)
  err = expect_type(key .. ':recent', 'list')
  if err then return err end
  -- A read of the wrong type is an error reply (pcall), not a failed script: one call checks and reads.
  local gone = (not u.tag) and redis.pcall('GET', key .. ':forgotten')
  if type(gone) == 'table' and gone.err then
    return redis.error_reply('refused, nothing written: ' .. key .. ':forgotten: ' .. gone.err)
  end
  if gone and not tonumber(gone) then
    return redis.error_reply('refused, nothing written: ' .. key .. ':forgotten is not a time')
  end
  if gone and u.first_seen and u.first_seen <= tonumber(gone) then
    return redis.error_reply('refused, nothing written: ' .. key .. ' was forgotten at ' .. gone .. ' and the step ' ..
      'holds an older tweet of theirs (erased since the task looked): the task is retried and leaves it out')
  end
  if horizon > 0 and not u.tag and (#u.ids > 0 or #u.deletes > 0 or #u.blocked > 0) then
    -- One HMGET (in slices) reads the trim mark and what is kept of the step's ids and deletions; pcall: a key of
    -- another type is an error reply here, before any write.
    local fields = {TRIM}
    for _, id in ipairs(u.ids) do table.insert(fields, id) end
    for _, id in ipairs(u.deletes) do table.insert(fields, id) end
    local got = {}
    for i = 1, #fields, 2000 do
      local part = redis.pcall('HMGET', key .. ':ids', unpack(fields, i, math.min(#fields, i + 1999)))
      if part.err then return redis.error_reply('refused, nothing written: ' .. key .. ':ids: ' .. part.err) end
      for _, v in ipairs(part) do table.insert(got, v) end
    end
    u.trim = tonumber(got[1]) or 0
    for i, id in ipairs(u.ids) do
      local entry = got[i + 1]
      local at = entry and tonumber(string.match(entry, '^%S+'))
      if at and at > now - horizon then
        -- The task left out the ids it saw counted (counted_ids); one counted since is a duplicate it did not see.
        return redis.error_reply('refused, nothing written: tweet ' .. id .. ' of ' .. key .. ' was counted ' ..
          'already (a duplicate counted since the task looked): the task is retried and leaves it out')
      end
    end
    for i, id in ipairs(u.deletes) do
      local entry = got[#u.ids + i + 1]
      if not entry or not string.find(entry, ' ', 1, true) then
        return redis.error_reply('refused, nothing written: the contribution of tweet ' .. id .. ' of ' .. key ..
          ' is gone (taken out since the task read it): the task is retried')
      end
    end
  end
  local fields = {'n', 'scored', 'polarity_sum', 'ewma_s', 'ewma_w', 'ewma_t', 'first_seen', 'last_seen', 'late'}
  if u.wm then table.insert(fields, 'wm:' .. u.wm) end
  for lang, _ in pairs(u.languages) do table.insert(fields, 'lang:' .. lang) end
  for label, _ in pairs(u.counts) do table.insert(fields, 'count:' .. label) end
  for label, _ in pairs(u.prob_sums) do table.insert(fields, 'prob_sum:' .. label) end
  for _, label in ipairs(ranked) do table.insert(fields, 'prob_sum:' .. label) end
  err, u.old = expect_numbers(key, fields)
  if err then return err end
  for hour, counts in pairs(u.hourly) do
    local hkey = key .. ':h:' .. hour
    local labels = {}
    for label, _ in pairs(counts) do table.insert(labels, label) end
    err = expect_numbers(hkey, labels, true)
    if err then return err end
  end
  u.mold = {}
  for hour, counts in pairs(u.minutes or {}) do
    local mkey = key .. ':m:' .. hour
    local names = {}
    for name, _ in pairs(counts) do table.insert(names, name) end
    err, u.mold[hour] = expect_numbers(mkey, names, false)
    if err then return err end
  end
end

-- 2. Write. A user's hash is read once (above) and written once: the sums are added here, in doubles, and stored
-- with 17 significant digits (a double's round trip), one HSET instead of an HINCRBY or HINCRBYFLOAT per field.
-- A field's new value: into the HSET's arguments, and into the user's numbers (``old``, as the step leaves them).
local function put(hash, old, field, v, format)
  old[field] = v
  table.insert(hash, field)
  table.insert(hash, format and string.format(format, v) or tostring(v))
end
local tops = {}
local written = {}  -- key -> its numbers after this script's write (a user twice in one step reads them, not u.old)
for _, u in ipairs(users) do
  local key = key_of(u)
  -- A step of deletions of tweets never counted here only records their ids: the user's keys stay untouched.
  if #u.ids > 0 or #u.deletes > 0 or u.tag then
    local old = u.old
    if written[key] then for field, v in pairs(written[key]) do old[field] = v end end
    local hash = {}
    -- A user counted before tweets could go unscored has no 'scored' field: all of their n were scored.
    local scored = (old['scored'] or old['n'] or 0) + u.scored
    local n = (old['n'] or 0) + u.n
    put(hash, old, 'n', n, '%d')
    put(hash, old, 'scored', scored, '%d')
    for lang, c in pairs(u.languages) do put(hash, old, 'lang:' .. lang, (old['lang:' .. lang] or 0) + c, '%d') end
    for label, c in pairs(u.counts) do put(hash, old, 'count:' .. label, (old['count:' .. label] or 0) + c, '%d') end
    for label, v in pairs(u.prob_sums) do
      put(hash, old, 'prob_sum:' .. label, (old['prob_sum:' .. label] or 0) + v, '%.17g')
    end
    put(hash, old, 'polarity_sum', (old['polarity_sum'] or 0) + u.polarity_sum, '%.17g')
    local s, w, t = u.ewma_s, u.ewma_w, u.ewma_t
    if w == 0 then  -- no scored tweet in this step: the EWMA stays as it was
      s, w, t = old['ewma_s'] or 0, old['ewma_w'] or 0, old['ewma_t'] or 0
    elseif old['ewma_w'] and old['ewma_w'] > 0 then
      local os, ow, ot = old['ewma_s'], old['ewma_w'], old['ewma_t']
      local tt = math.max(ot, t)
      local a = math.pow(0.5, (tt - ot) / half_life)
      local b = math.pow(0.5, (tt - t) / half_life)
      s, w, t = os * a + s * b, ow * a + w * b, tt
    end
    -- A step of deletions only has no first or last seen: both stay (a deletion does not move them).
    local first = u.first_seen
    if old['first_seen'] then first = first and math.min(first, old['first_seen']) or old['first_seen'] end
    local lastseen = u.last_seen
    if old['last_seen'] then lastseen = lastseen and math.max(lastseen, old['last_seen']) or old['last_seen'] end
    put(hash, old, 'ewma_s', s)
    put(hash, old, 'ewma_w', w)
    put(hash, old, 'ewma_t', t)
    if u.wm and u.last_seen then
      -- Late: tweets of a minute that ended more than ``lateness`` before their partition's event time as it stood.
      local wm = old['wm:' .. u.wm]
      if wm then
        local late = 0
        for _, pair in ipairs(u.starts or {}) do
          if pair[1] + 60 + lateness < wm then late = late + pair[2] end
        end
        if late > 0 then put(hash, old, 'late', (old['late'] or 0) + late, '%d') end
      end
      put(hash, old, 'wm:' .. u.wm, wm and math.max(wm, u.last_seen) or u.last_seen, '%.17g')
    end
    if first then put(hash, old, 'first_seen', first) end
    if lastseen then put(hash, old, 'last_seen', lastseen) end
    redis.call('HSET', key, unpack(hash))
    written[key] = old
    -- Oldest first: LPUSH puts each value at the head in turn, so the newest (recent[1]) ends up first.
    local pushed = {}
    for i = #u.recent, 1, -1 do table.insert(pushed, u.recent[i]) end  -- JSON texts (UserDelta.to_wire)
    if #pushed > 0 then redis.call('LPUSH', key .. ':recent', unpack(pushed)) end
    local keep = u.tag and tag_recent_k or recent_k
    if #pushed > 0 or not u.tag then redis.call('LTRIM', key .. ':recent', 0, keep - 1) end
    for _, id in ipairs(u.deletes) do  -- a deleted tweet leaves the recent list too
      for _, entry in ipairs(redis.call('LRANGE', key .. ':recent', 0, -1)) do
        local ok, e = pcall(cjson.decode, entry)
        if ok and type(e) == 'table' and e.id == id then
          redis.call('LREM', key .. ':recent', 1, entry)
          break
        end
      end
    end
    for hour, counts in pairs(u.hourly) do
      local hkey = key .. ':h:' .. hour
      for label, c in pairs(counts) do
        if redis.call('HINCRBY', hkey, label, c) <= 0 then redis.call('HDEL', hkey, label) end
      end
      if redis.call('EXISTS', hkey) == 1 then redis.call('EXPIRE', hkey, bucket_ttl) end
    end
    local ttl = user_ttl
    if u.tag then ttl = (n >= tag_min) and tag_ttl or probation end
    for hour, counts in pairs(u.minutes or {}) do
      -- Read above, written here in one HSET (a count that reaches 0 goes), as the tag's hash is.
      local mkey = key .. ':m:' .. hour
      local mold = u.mold[hour]
      if written[mkey] then for name, v in pairs(written[mkey]) do mold[name] = v end end
      local fields, gone = {}, {}
      for name, c in pairs(counts) do
        local v = (mold[name] or 0) + c
        mold[name] = v
        if string.sub(name, -2) == ':p' then
          table.insert(fields, name)
          table.insert(fields, string.format('%.17g', v))
        elseif v == 0 then
          table.insert(gone, name)
        else
          table.insert(fields, name)
          table.insert(fields, string.format('%d', v))
        end
      end
      written[mkey] = mold
      if #fields > 0 then redis.call('HSET', mkey, unpack(fields)) end
      if #gone > 0 then redis.call('HDEL', mkey, unpack(gone)) end
      redis.call('EXPIRE', mkey, ttl)
    end
    if ttl > 0 then
      redis.call('EXPIRE', key, ttl)
      if #pushed > 0 or not u.tag then redis.call('EXPIRE', key .. ':recent', ttl) end
    end
    -- Ranked by the mean over scored tweets, from the minimum count of them; tags also by their count (the stream,
    -- '*', is no tag to rank).
    local top = u.tag and 'tagtop:' or 'top:'
    -- A tag on probation is ranked nowhere; one that never left it need not be taken out of the sets either.
    local on_probation = u.tag and n < tag_min
    local never_ranked = on_probation and (n - u.n) < tag_min
    local row = {u.id, on_probation and 0 or scored}
    if not (u.tag and u.id == '*') and not never_ranked then
      for _, label in ipairs(ranked) do
        local zkey = prefix .. top .. label
        local sum = old['prob_sum:' .. label] or 0
        if not top_here then
          table.insert(row, sum)
        elseif scored >= min_count and scored > 0 and not on_probation then
          redis.call('ZADD', zkey, sum / scored, u.id)
        else
          redis.call('ZREM', zkey, u.id)
        end
      end
      if u.tag then
        local ranked_n = on_probation and 0 or n
        if not top_here then
          table.insert(row, ranked_n)
          table.insert(row, 1)
        elseif ranked_n > 0 then
          redis.call('ZADD', prefix .. 'tagtop:n', old['n'], u.id)
        else
          redis.call('ZREM', prefix .. 'tagtop:n', u.id)
        end
      end
      if not top_here then table.insert(tops, row) end
    end
  end
  if horizon > 0 and not u.tag and (#u.ids > 0 or #u.deletes > 0 or #u.blocked > 0) then
    -- Ids with their contributions, in one hash; a deleted tweet's id stays, without (its replay is a duplicate).
    local ids = key .. ':ids'
    local entries = {}
    for _, id in ipairs(u.ids) do
      local c = u.contributions[id]
      table.insert(entries, id)
      table.insert(entries, c and (stamp .. ' ' .. c) or stamp)
    end
    for _, list in ipairs({u.deletes, u.blocked}) do
      for _, id in ipairs(list) do
        table.insert(entries, id)
        table.insert(entries, stamp)
      end
    end
    call_sliced('HSET', ids, entries, 2)
    -- Trimmed only when it has doubled since the last trim: each id is read back O(1) times on average.
    local size = redis.call('HLEN', ids)
    if size > 2 * u.trim + 64 then
      local all, old_ids = redis.call('HGETALL', ids), {}
      for i = 1, #all, 2 do
        local at = tonumber(string.match(all[i + 1], '^%S+'))
        if all[i] ~= TRIM and (not at or at <= now - horizon) then table.insert(old_ids, all[i]) end
      end
      call_sliced('HDEL', ids, old_ids, 1)
      redis.call('HSET', ids, TRIM, size - #old_ids)  -- (the mark itself included)
    end
    redis.call('EXPIRE', ids, math.ceil(horizon))  -- every id in it was counted by now: all expire by then
  end
end
if evidence then
  for f, v in pairs(evidence.counts) do redis.call('HINCRBY', evidence_key, f, string.format('%d', v)) end
  for f, v in pairs(evidence.sums) do redis.call('HINCRBYFLOAT', evidence_key, f, string.format('%.17g', v)) end
  if #evidence.flips > 0 then
    redis.call('LPUSH', evidence_key .. ':flips', unpack(evidence.flips))
    redis.call('LTRIM', evidence_key .. ':flips', 0, flips_kept - 1)
  end
end
redis.call('SET', applied_key, end_offset)
if top_here then return 1 end
return cjson.encode(tops)
"""


# Erase a user's keys (KEYS: the hash, recent list, ids, tombstone, hourly buckets) and set the
# tombstone (ARGV: when, its TTL); never move an existing tombstone back. 1 when the user's hash existed.
FORGET = r"""
local existed = redis.call('EXISTS', KEYS[1])
local tombstone = KEYS[4]
local before = tonumber(redis.call('GET', tombstone) or '')
redis.call('DEL', unpack(KEYS))
local at = tonumber(ARGV[1])
if before and before > at then at = before end
redis.call('SET', tombstone, string.format('%.17g', at), 'EX', tonumber(ARGV[2]))
return existed
"""
FORGET_HOURS_BACK = 400 * 24  # hourly buckets erased back from a user's last tweet (they expire after a week anyway)


class RedisToneStore:
    """Per-user aggregates in Redis (the :class:`~tone.aggregates.store.ToneStore` protocol)."""

    sharded = False

    def __init__(  # noqa: PLR0913 - the client and how to use it
        self,
        client: redis.Redis,
        config: StoreConfig | None = None,
        retry_s: float = 0.0,
        where: str = "Redis",
        wait_replicas: int = 0,
        wait_timeout_ms: int = 2000,
    ) -> None:
        """Wrap a redis-py client (decode_responses=False).

        ``retry_s``: how long apply retries a lost connection; ``where``: the server, for messages (no password);
        ``wait_replicas``: replicas that must have each apply (Redis WAIT, at most ``wait_timeout_ms``).
        """
        self.client: Any = client  # redis-py's return types are unions of sync/async shapes; we use sync bytes
        self.config = config or StoreConfig()
        self.retry_s = retry_s
        self.where = where
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._apply = client.register_script(APPLY_BATCH)
        self._forget = client.register_script(FORGET)

    @classmethod
    def from_url(
        cls, url: str, password: str | None = None, config: StoreConfig | None = None, retry_s: float = 0.0
    ) -> RedisToneStore:
        """Connect by URL (see :func:`redis_client`)."""
        return cls(redis_client(url, password), config, retry_s, redact_url(url))

    def ping(self) -> None:
        """Check that Redis answers and takes our credentials; ServiceError saying what to check if not."""
        import redis

        where = f"Redis at {self.where}"
        try:
            self.client.ping()
        except redis.AuthenticationError as exc:
            msg = f"{where} refused the credentials ({exc}): check TONE_REDIS_PASSWORD (or a password in its URL)"
            raise ServiceError(msg) from None
        except redis.ResponseError as exc:
            if "NOAUTH" not in str(exc):
                raise
            msg = f"{where} needs a password: set TONE_REDIS_PASSWORD"
            raise ServiceError(msg) from None
        except redis.ConnectionError as exc:
            msg = (
                f"cannot reach {where}: {exc}. Is it running (tone stack status)? A TLS server needs a rediss:// URL, "
                "and TONE_REDIS_CA_FILE when its certificate is not from a system CA"
            )
            raise ServiceError(msg) from None

    def shard_of(self, user_id: str) -> int:  # noqa: ARG002 - the protocol's shape
        """One node: one shard."""
        return 0

    def script_args(  # noqa: PLR0913 - a step and where its evidence goes
        self,
        start: int,
        end: int,
        deltas: Sequence[UserDelta],
        *,
        top_here: bool = True,
        evidence: StepEvidence | None = None,
        evidence_key: str = "",
    ) -> list[Any]:
        """The apply script's arguments for one step (``evidence``: its shadow evidence, into ``evidence_key``)."""
        c = self.config
        payload = json.dumps([d.to_wire() | {"key": key_part(d.user_id)} for d in deltas], allow_nan=False)
        args: list[Any] = [start, payload, c.half_life_s, c.recent_k, c.top_min_count, c.bucket_ttl_s, c.prefix, end]
        args += [json.dumps(RANKED_LABELS), c.user_ttl_s, int(top_here), c.dedupe_horizon_s]
        tail = [c.tag_ttl_s, c.lateness_s, c.tag_min_tweets, c.tag_probation_s, c.tag_recent_k]
        if not evidence:
            return [*args, "", "{}", FLIPS_KEPT, *tail]
        # An empty Lua table encodes as {}: the lists and maps are written so that the script reads them alike.
        wire = {"counts": evidence.counts, "sums": evidence.sums, "flips": evidence.flips}
        return [*args, evidence_key, json.dumps(wire, allow_nan=False), FLIPS_KEPT, *tail]

    def evidence_key(self, query: str, shard: int = 0) -> str:  # noqa: ARG002 - one node has one shard
        """The hash of ``query``'s shadow evidence (its flipped tweets: the list at this key + ``:flips``)."""
        return f"{self.config.prefix}shadow:{query}"

    def shadow_evidence(self, query: str) -> list[dict[str, Any]]:
        """The stream ``query``'s shadow evidence (see tone.aggregates.shadow.evidence_view)."""
        return self._evidence_of([self.evidence_key(query)])

    def _evidence_of(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
            pipe.lrange(f"{key}:flips", 0, -1)
        replies = pipe.execute()
        hashes = [{_text(k): _text(v) for k, v in raw.items()} for raw in replies[::2]]
        return evidence_view(hashes, [_text(f) for rows in replies[1::2] for f in rows])

    def apply_steps(self, query: str, topic: str, partition: int, steps: Sequence[Step]) -> list[bool]:
        """Each step on its own (one node has one shard: count_records sends one step at a time)."""
        return [self.apply_range(query, topic, partition, t.start, t.end, t.deltas, t.shard, t.evidence) for t in steps]

    def apply_range(  # noqa: PLR0913 - a step's coordinates
        self,
        query: str,
        topic: str,
        partition: int,
        start: int,
        end: int,
        deltas: Sequence[UserDelta],
        shard: int = 0,  # noqa: ARG002 - one node has one shard
        evidence: StepEvidence | None = None,
    ) -> bool:
        """Apply the tweets of offsets [start, end] of one partition atomically; False if already applied."""
        import redis

        check_range(start, end)
        args = self.script_args(start, end, deltas, evidence=evidence, evidence_key=self.evidence_key(query))
        keys = [self._applied_key(query, topic, partition)]

        def apply() -> Any:
            if not self.wait_replicas:
                return self._apply(keys=keys, args=args)
            pipe = self.client.pipeline(transaction=False)
            self._apply(keys=keys, args=args, client=pipe)
            pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
            applied, acked = pipe.execute()
            self.check_acked(int(acked))
            return applied

        # Safe to repeat: a retry after a reply lost in a dropped connection finds the range applied (returns 0).
        applied = with_retries(
            apply,
            transient=(redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError),
            what=f"Redis apply of {topic}[{partition}] offsets {start}-{end}",
            give_up_after_s=self.retry_s,
        )
        return bool(applied)

    def check_acked(self, acked: int, where: str | None = None) -> None:
        """Fail the task when fewer replicas than TONE_REDIS_WAIT_REPLICAS have an apply's writes.

        The writes stay on the master, and the task's retry counts nothing twice (the markers moved with them). If
        the master is lost before a replica has them, the promoted replica has neither the counts nor the markers:
        the retry counts those records again, once.
        """
        if acked >= self.wait_replicas:
            return
        msg = (
            f"only {acked} of {self.wait_replicas} Redis replicas of {where or self.where} acknowledged an apply "
            f"within {self.wait_timeout_ms} ms (TONE_REDIS_WAIT_REPLICAS, TONE_REDIS_WAIT_TIMEOUT_MS): the task fails "
            "and its retry counts nothing twice. Check the replicas (redis-cli ... INFO replication)"
        )
        raise ServiceError(msg)

    def replicas(self) -> dict[str, int]:
        """Each master's connected replicas, by address (one node: itself)."""
        info = self.client.info("replication")
        return {self.where: int(info.get("connected_slaves", 0))}

    def check_replicas(self) -> None:
        """Refuse, before anything is written, a TONE_REDIS_WAIT_REPLICAS that some master cannot meet.

        Every apply would write its counts and then fail WAIT, and the query would stop after its restarts with some
        users counted and most not.
        """
        if not self.wait_replicas:
            return
        short = {where: n for where, n in self.replicas().items() if n < self.wait_replicas}
        if short:
            shown = ", ".join(f"{where} has {n}" for where, n in sorted(short.items()))
            msg = (
                f"TONE_REDIS_WAIT_REPLICAS={self.wait_replicas}, but not every Redis master has that many replicas "
                f"connected ({shown}): each count would wait for a replica that is not there. Add replicas (redis-cli "
                "--cluster add-node NEW_HOST:PORT EXISTING_HOST:PORT --cluster-slave), or set "
                "TONE_REDIS_WAIT_REPLICAS=0 and accept that a master's loss can take counts it acknowledged "
                "(docs/scaling.md)"
            )
            raise ConfigError(msg)

    def shard_offsets(self, query: str, topic: str, partition: int, shards: Sequence[int]) -> list[int | None]:
        """One node: the partition's marker is the only one."""
        return [self.last_offset(query, topic, partition)] * len(shards)

    def advance(self, query: str, topic: str, partition: int, end: int) -> None:
        """Nothing: on one node the apply moves the partition's marker itself."""

    def _applied_key(self, query: str, topic: str, partition: int) -> str:
        return f"{self.config.prefix}applied:{query}:{topic}:{partition}"

    def last_offset(self, query: str, topic: str, partition: int) -> int | None:
        """Last Kafka offset of ``topic``/``partition`` whose tweets ``query`` has counted (retried like an apply)."""
        import redis

        key = self._applied_key(query, topic, partition)
        value = with_retries(
            lambda: self.client.get(key),
            transient=(redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError),
            what=f"Redis marker read of {topic}[{partition}]",
            give_up_after_s=self.retry_s,
        )
        return int(value) if value is not None else None

    def user_key(self, user_id: str) -> str:
        """The hash of a user's aggregates (see the key layout)."""
        return f"{self.config.prefix}user:{{{key_part(user_id)}}}"

    def recent_key(self, user_id: str) -> str:
        """The list of a user's recent scored tweets."""
        return f"{self.user_key(user_id)}:recent"

    def hour_key(self, user_id: str, hour: str) -> str:
        """A user's label counts in one UTC hour (``YYYYMMDDHH``)."""
        return f"{self.user_key(user_id)}:h:{hour}"

    def user(self, user_id: str) -> dict[str, Any] | None:
        """A user's aggregates, or None for an unknown user."""
        pipe = self.client.pipeline(transaction=False)
        return self._user_from(user_id, *self._read_user(pipe, user_id).execute())

    async def user_async(self, aclient: Any, user_id: str) -> dict[str, Any] | None:
        """:meth:`user` on a redis.asyncio client (:func:`redis_client` with ``asyncio=True``): for an event loop."""
        pipe = aclient.pipeline(transaction=False)
        return self._user_from(user_id, *(await self._read_user(pipe, user_id).execute()))

    def _read_user(self, pipe: Any, user_id: str) -> Any:
        # One round trip: both keys hash to the user's slot, so a Redis Cluster takes them in one pipeline too.
        pipe.hgetall(self.user_key(user_id))
        pipe.lrange(self.recent_key(user_id), 0, -1)
        return pipe

    @staticmethod
    def _user_from(user_id: str, raw: Mapping[bytes, bytes], rows: list[bytes]) -> dict[str, Any] | None:
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        return user_view(user_id, fields, [json.loads(r) for r in rows] if fields else [])

    def tag_key(self, tag: str) -> str:
        """The hash of a tag's aggregates (the stream's: tag ``*``); its recent list and minute buckets follow it."""
        return f"{self.config.prefix}tag:{{{key_part(tag)}}}"

    def tag(self, tag: str) -> dict[str, Any] | None:
        """A tag's aggregates (tone.aggregates.store.tag_view), or None for a tag never counted (or expired)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.tag_key(tag))
        pipe.lrange(f"{self.tag_key(tag)}:recent", 0, -1)
        raw, rows = pipe.execute()
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        return tag_view(tag, fields, [json.loads(r) for r in rows] if fields else [])

    def tag_minutes(self, tag: str, hours: Sequence[str]) -> list[dict[str, float]]:
        """A tag's minute buckets of each UTC hour, in one round trip (they share the tag's slot)."""
        pipe = self.client.pipeline(transaction=False)
        for hour in hours:
            pipe.hgetall(f"{self.tag_key(tag)}:m:{hour}")
        return [{k.decode(): float(v) for k, v in raw.items()} for raw in pipe.execute()]

    def top_tags(self, by: str, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` tags with the highest mean p(``by``) or (``by`` "n") the most tweets; expired tags left out."""
        check_tag_rank(by)
        return self._ranked(f"{self.config.prefix}tagtop:{by}", n, self._expired_tags)

    def _expired_tags(self, tags: Sequence[str]) -> list[str]:
        if not tags:
            return []
        pipe = self.client.pipeline(transaction=False)
        for tag in tags:
            pipe.exists(self.tag_key(tag))
        return [t for t, exists in zip(tags, pipe.execute(), strict=True) if not exists]

    def _prune_tag_tops(self, cursors: dict[str, int], count: int) -> int:
        """Entries of expired tags leave the tags' top sets (a tag's n and means are rewritten by each of its steps)."""
        removed = 0
        for by in TAG_RANKS:
            zkey = f"{self.config.prefix}tagtop:{by}"
            cursor, rows = self.client.zscan(zkey, cursors.get(f"tag:{by}", 0), count=count)
            cursors[f"tag:{by}"] = int(cursor)
            if gone := self._expired_tags([member.decode() for member, _ in rows]):
                removed += int(self.client.zrem(zkey, *gone))
        return removed

    def hourly(self, user_id: str, hour: str) -> dict[str, int]:
        """Label counts of one UTC hour bucket (``YYYYMMDDHH``)."""
        return {k.decode(): int(v) for k, v in self.client.hgetall(self.hour_key(user_id, hour)).items()}

    def kept_contributions(self, ids: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], str]:
        """Of ``ids`` (user -> tweet ids), the contributions kept for a deletion, of tweets counted within the horizon.

        One HMGET a user, in one round trip.
        """
        return {key: kept for key, (_, kept) in self._kept(ids).items() if kept}

    def _kept(self, ids: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], tuple[float, str]]:
        """What ``tone:user:{k}:ids`` holds of ``ids`` counted within the horizon: (when counted, contribution).

        The cutoff is this machine's clock against Redis's (the apply script's, which records them): a skew moves
        the horizon's edge by as much, nothing else.
        """
        users = [(u, list(t)) for u, t in ids.items() if t]
        if not users or not self.config.dedupe_horizon_s:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for user_id, tweet_ids in users:
            pipe.hmget(self.ids_key(user_id), tweet_ids)
        cutoff = time.time() - self.config.dedupe_horizon_s
        out = {}
        for (user_id, tweet_ids), values in zip(users, pipe.execute(), strict=True):
            for t, raw in zip(tweet_ids, values, strict=True):
                if raw is None:
                    continue
                at, _, kept = raw.decode(errors="replace").partition(" ")
                with contextlib.suppress(ValueError):
                    if float(at) > cutoff:
                        out[(user_id, t)] = (float(at), kept)
        return out

    def forgotten(self, user_ids: Sequence[str]) -> dict[str, float]:
        """Of ``user_ids``, those erased within the horizon, and when."""
        if not user_ids:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.get(f"{self.user_key(user_id)}:forgotten")
        out = {}
        for user_id, raw in zip(user_ids, pipe.execute(), strict=True):
            with contextlib.suppress(TypeError, ValueError):
                out[user_id] = float(raw)
        return out

    def forget(self, user_id: str, at: float) -> bool:
        """Erase a user: their keys in one script in their slot, their top-N entries after; a tombstone stays.

        The tombstone (``tone:user:{k}:forgotten``: the time) lasts the dedupe horizon, at least a day.
        """
        key = self.user_key(user_id)
        seen = self.client.hmget(key, "first_seen", "last_seen")
        hours: list[str] = []
        if seen[0] is not None and seen[1] is not None:
            last = float(seen[1])
            first = max(float(seen[0]), last - FORGET_HOURS_BACK * 3600)
            hours = sorted({hour_bucket(first + 3600 * i) for i in range(int((last - first) // 3600) + 2)})
        keys = [key, f"{key}:recent", f"{key}:ids", f"{key}:forgotten", *(f"{key}:h:{h}" for h in hours)]
        ttl = max(self.config.dedupe_horizon_s, 86_400)
        # The tags of the tweets still kept (within the horizon), read before the script deletes them: the user's
        # tweets leave those tags' recent lists too (idempotent; an erasure repeated by a retry finds none).
        tags = tags_of_contributions(_text(v) for v in self.client.hvals(self.ids_key(user_id)))
        existed = bool(self._forget(keys=keys, args=[at, ttl]))
        for label in RANKED_LABELS:
            self.client.zrem(f"{self.config.prefix}top:{label}", user_id)
        for tag in tags:
            recent = f"{self.tag_key(tag)}:recent"
            for entry in self.client.lrange(recent, 0, -1):
                if _of_user(entry, user_id):
                    self.client.lrem(recent, 1, entry)
        return existed

    def ids_key(self, user_id: str) -> str:
        """A user's tweet ids counted within the dedupe horizon, with their contributions (a hash: see the module)."""
        return f"{self.user_key(user_id)}:ids"

    def counted_ids(self, ids: Mapping[str, Sequence[str]]) -> set[tuple[str, str]]:
        """Of ``ids`` (user -> tweet ids), those counted within the horizon: one HMGET a user, one round trip."""
        return set(self._kept(ids))

    def hourly_many(self, user_id: str, hours: Sequence[str]) -> list[dict[str, int]]:
        """:meth:`hourly` for each hour in one pipeline (one round trip: the buckets share the user's slot)."""
        pipe = self.client.pipeline(transaction=False)
        for hour in hours:
            pipe.hgetall(self.hour_key(user_id, hour))
        return [{k.decode(): int(v) for k, v in raw.items()} for raw in pipe.execute()]

    def _health_key(self, query: str) -> str:
        return f"{self.config.prefix}stream:{query}"

    def write_health(self, query: str, fields: Mapping[str, str]) -> None:
        """Replace the stream's health record (``tone:stream:{query}``) in one transaction."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self._health_key(query))
        pipe.hset(self._health_key(query), mapping=dict(fields))
        pipe.execute()

    def health(self, query: str) -> dict[str, str] | None:
        """The stream's health record, or None."""
        raw = self.client.hgetall(self._health_key(query))
        return {k.decode(): v.decode() for k, v in raw.items()} or None

    def top(self, by: str, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` users with the highest mean p(``by``); users whose keys expired are left out.

        Reads only, so the API can run on a read replica: the stream's sweep after each batch (:meth:`prune_top`)
        removes the expired users' entries. Until it has, they are skipped here, a page at a time.
        """
        check_ranked(by)
        return self._ranked(f"{self.config.prefix}top:{by}", n, self._expired)

    def _ranked(self, zkey: str, n: int, expired: Callable[[Sequence[str]], list[str]]) -> list[tuple[str, float]]:
        """The ``n`` best members of a top set whose keys have not expired, a page at a time."""
        out: list[tuple[str, float]] = []
        start, page = 0, max(n, 16)
        while len(out) < n:
            rows = [
                (m.decode(), float(s)) for m, s in self.client.zrevrange(zkey, start, start + page - 1, withscores=True)
            ]
            if not rows:
                break
            gone = set(expired([u for u, _ in rows]))
            out += [(u, s) for u, s in rows if u not in gone]
            start += page
        return finite_top(out[:n])

    def _expired(self, user_ids: Sequence[str]) -> list[str]:
        """Those of ``user_ids`` whose aggregates expired (TONE_USER_TTL_S): their top-N entries are stale."""
        if not user_ids or not self.config.user_ttl_s:
            return []
        pipe = self.client.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.exists(self.user_key(user_id))
        return [u for u, exists in zip(user_ids, pipe.execute(), strict=True) if not exists]

    def prune_top(self, cursors: dict[str, int], count: int = 500) -> int:
        """Remove up to about ``count`` stale entries per top set, resuming each set's ZSCAN at ``cursors[label]``.

        The stream calls it after each batch, so the top sets stay bounded by the users still stored, without one
        long command. Returns how many entries were removed.
        """
        removed = 0
        for label in RANKED_LABELS:
            zkey = f"{self.config.prefix}top:{label}"
            cursor, rows = self.client.zscan(zkey, cursors.get(label, 0), count=count)
            cursors[label] = int(cursor)
            if gone := self._expired([member.decode() for member, _ in rows]):
                removed += int(self.client.zrem(zkey, *gone))
        return removed + self._prune_tag_tops(cursors, count)

    def eviction_warning(self) -> str | None:
        """What is wrong with the server's ``maxmemory-policy`` for this store, or None.

        The offset markers carry no TTL, so the volatile-* policies and noeviction never evict them; an allkeys-*
        policy may, and the next replay of those offsets would count twice.
        """
        import redis

        try:
            reply = {_text(k): _text(v) for k, v in self.client.config_get("maxmemory-policy").items()}
        except redis.ResponseError:  # CONFIG is disabled on some managed services: nothing to check
            return None
        policy = reply.get("maxmemory-policy", "")
        if not policy.startswith("allkeys"):
            return None
        return (
            f"Redis at {self.where} has maxmemory-policy {policy}: under memory pressure it may evict the offset "
            f"markers ({self.config.prefix}applied:*) and tweets would then count twice. Use volatile-lru, "
            "volatile-ttl or noeviction (user keys expire with TONE_USER_TTL_S, markers never do)"
        )


def _of_user(entry: bytes | str, user_id: str) -> bool:
    """Whether a tag's recent entry is a tweet of ``user_id``."""
    try:
        row = json.loads(entry)
    except ValueError:
        return False
    return isinstance(row, dict) and row.get("user") == user_id


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def redact_url(url: str) -> str:
    """A URL (or comma-separated URLs) with any password in it replaced by ``***`` (for messages and logs)."""
    if "," in url:
        return ",".join(redact_url(u) for u in url.split(","))
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, _, host = rest.partition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def redis_client(
    url: str, password: str | None = None, ca_file: str | None = None, *, cluster: bool = False, asyncio: bool = False
) -> Any:
    """A redis-py client; timeouts set (a Redis that stops answering is an error, not a hang); TLS for rediss://.

    ``cluster``: a :class:`redis.cluster.RedisCluster` that finds the other nodes from the one in ``url``, or from
    the first that answers of several (comma-separated URLs: seed nodes, so the loss of one does not stop a client
    from starting). ``asyncio``: the same from ``redis.asyncio``, for an event loop (the HTTP API's lookups).
    """
    import urllib.parse

    import redis
    import redis.cluster

    kwargs: dict[str, Any] = {"password": password, "socket_timeout": 10, "socket_connect_timeout": 5}
    if not cluster and not asyncio:
        # No retry of redis-py's own under the project's (tone.retry): TONE_SINK_RETRY_S is then the bound. A cluster
        # client keeps redis-py's, which is how it follows MOVED and ASK; the API's (asyncio) lookups keep theirs.
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        kwargs["retry"] = Retry(NoBackoff(), 0)
    if url.startswith("rediss://") and ca_file:
        kwargs["ssl_ca_certs"] = ca_file
    kinds: tuple[Any, Any] = (redis.Redis, redis.cluster.RedisCluster)
    if asyncio:
        import redis.asyncio
        import redis.asyncio.cluster

        kinds = (redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster)
    if not cluster:
        return kinds[0].from_url(url, **kwargs)
    first, *seeds = url.split(",")
    if seeds:
        node = redis.asyncio.cluster.ClusterNode if asyncio else redis.cluster.ClusterNode
        parts = [urllib.parse.urlsplit(seed) for seed in seeds]
        kwargs["startup_nodes"] = [node(p.hostname or "127.0.0.1", p.port or 6379) for p in parts]
    try:
        return kinds[1].from_url(first, **kwargs)
    except (redis.exceptions.RedisClusterException, redis.ConnectionError) as exc:
        msg = (
            f"cannot use the Redis Cluster at {redact_url(url)}: {exc}. Is it running and is every slot served "
            "(redis-cli --cluster check HOST:PORT)? Unset TONE_REDIS_CLUSTER for a single Redis server"
        )
        raise ServiceError(msg) from None


def settings_client(settings: Settings, *, asyncio: bool = False) -> Any:
    """:func:`redis_client` on the configured Redis (URL, password, TLS CA, cluster or not)."""
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    ca_file = str(settings.redis_ca_file) if settings.redis_ca_file else None
    return redis_client(settings.redis_url, password, ca_file, cluster=settings.redis_cluster, asyncio=asyncio)
