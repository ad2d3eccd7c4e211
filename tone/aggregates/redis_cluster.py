"""The Redis Cluster store: the Redis store's keys spread over the hash slots, an offset marker per slot.

A user's keys share a slot (the braces around the encoded id are the hash tag). A range's records are grouped by
slot (:func:`~tone.aggregates.store.count_records`); each slot's part is one run of the Redis store's apply script
on the slot's master, against the slot's own marker ``tone:applied:{tag}:{query}:{topic}:{partition}`` (``tag``: a
short string that hashes to that slot), so each slot counts each record once on its own. One round trip per master
carries all of a step's slot parts, then ``WAIT`` for ``wait_replicas`` replicas on the same connection (WAIT counts
the replicas that have this connection's writes). The partition's marker (``tone:applied:{query}:{topic}:{partition}``,
in whatever slot it hashes to) moves to a range's end only after every slot has counted it.

Redirections are retried: MOVED (a slot moved: the slot map is read again), ASK (a slot half-way through a
migration: the part goes to the importing master with ASKING), TRYAGAIN (its keys are split between the two) and
a lost master (its replica takes over; until then the cluster answers CLUSTERDOWN or not at all). Each retry is safe:
a part already applied is refused by its marker.

Top-N is derived, not counted: the top sets are single keys, so they cannot be written in the slot scripts. Each
applied part returns its users' new count and probability sums, and the store then writes their scores to the top
sets. A reader (:meth:`RedisClusterToneStore.top`) checks the rows it reads against the users' hashes and shows
their current means (a task killed between its apply and the top write, or two attempts' writes landing out of
order, leave a score stale), without writing: the stream's sweep after each batch (``prune_top``) repairs the sets.
What can lag is a user missing from a top set (a kill between the apply and the top write) until their next
counted tweet.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
from binascii import crc_hqx
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from tone.aggregates.redis_store import APPLY_BATCH, RedisToneStore
from tone.aggregates.shadow import StepEvidence, evidence_view
from tone.aggregates.store import Step, check_range, check_ranked, finite_top
from tone.errors import ServiceError
from tone.labels import RANKED_LABELS
from tone.retry import policy, with_retries

if TYPE_CHECKING:
    from redis.cluster import ClusterNode

    from tone.aggregates.deltas import UserDelta

log = logging.getLogger(__name__)
T = TypeVar("T")

SLOTS: Final = 16384

ADVANCE: Final = r"""
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if not current then return redis.error_reply('refused: ' .. KEYS[1] .. ' is not an offset') end
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""


def _str(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def key_slot(key: str) -> int:
    """The hash slot of ``key`` (Redis Cluster's rule: CRC16 of the first non-empty ``{...}``, else the key)."""
    raw = key.encode()
    start = raw.find(b"{")
    if start > -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return crc_hqx(raw, 0) % SLOTS


@functools.cache
def slot_tags() -> tuple[str, ...]:
    """For each slot, the shortest hex number (as text) that hashes to it: the hash tag of the slot's markers."""
    tags: list[str | None] = [None] * SLOTS
    missing, i = SLOTS, 0
    while missing:
        tag = format(i, "x")
        slot = crc_hqx(tag.encode(), 0) % SLOTS
        if tags[slot] is None:
            tags[slot] = tag
            missing -= 1
        i += 1
    return tuple(t for t in tags if t is not None)


class _PartsLeft(Exception):  # noqa: N818 - a retry signal inside apply_steps, not an error a caller sees
    """Slot parts of a step to send again (their indexes) and the last reply or error that sent them back."""

    def __init__(self, parts: list[int], last: BaseException | None) -> None:
        super().__init__(f"{len(parts)} slot parts to retry ({type(last).__name__}: {str(last)[:200]})")
        self.parts, self.last = parts, last


def _retriable(reply: BaseException) -> bool:
    import redis

    if isinstance(reply, redis.ResponseError):
        text = str(reply)
        return isinstance(reply, redis.exceptions.MovedError | redis.exceptions.TryAgainError) or text.startswith(
            ("CLUSTERDOWN", "MOVED", "TRYAGAIN", "LOADING", "MASTERDOWN", "READONLY")
        )
    return isinstance(reply, redis.ConnectionError | redis.TimeoutError | redis.exceptions.ClusterError)


class RedisClusterToneStore(RedisToneStore):
    """Per-user aggregates on a Redis Cluster (the :class:`~tone.aggregates.store.ToneStore` protocol)."""

    sharded = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """As :class:`RedisToneStore`, with a :class:`redis.cluster.RedisCluster` client."""
        super().__init__(*args, **kwargs)
        self._advance = self.client.register_script(ADVANCE)
        self._sha: str | None = None
        self._loaded: set[str] = set()  # masters known to have the apply script
        self.redirects = 0  # slot parts sent again (MOVED, ASK, TRYAGAIN, a lost master): for tests and logs

    def replicas(self) -> dict[str, int]:
        """Each master's connected replicas, by address."""
        return {
            node.name: int(self.client.get_redis_connection(node).info("replication").get("connected_slaves", 0))
            for node in self.client.get_primaries()
        }

    def shard_of(self, user_id: str) -> int:
        """The hash slot of the user's keys."""
        return key_slot(self.user_key(user_id))

    def slot_marker_key(self, query: str, topic: str, partition: int, slot: int) -> str:
        """The marker of ``slot``'s part of (query, topic, partition): a key in that slot."""
        return f"{self.config.prefix}applied:{{{slot_tags()[slot]}}}:{query}:{topic}:{partition}"

    def evidence_key(self, query: str, shard: int = 0) -> str:
        """The hash of ``query``'s shadow evidence counted in ``slot`` (a key in that slot, next to its marker)."""
        return f"{self.config.prefix}shadow:{{{slot_tags()[shard]}}}:{query}"

    def evidence_slots_key(self, query: str) -> str:
        """The set of the slots that hold ``query``'s shadow evidence (in whatever slot it hashes to)."""
        return f"{self.config.prefix}shadow-slots:{query}"

    def shadow_evidence(self, query: str) -> list[dict[str, Any]]:
        """The stream's shadow evidence: the hashes of the slots listed in its set, summed (no SCAN of the keyspace)."""
        slots = sorted(int(x) for x in self.client.smembers(self.evidence_slots_key(query)))
        pipe = self.client.pipeline()
        for slot in slots:
            key = self.evidence_key(query, slot)
            pipe.hgetall(key)
            pipe.lrange(f"{key}:flips", 0, -1)
        replies = pipe.execute() if slots else []
        hashes = [{_str(k): _str(v) for k, v in raw.items()} for raw in replies[::2]]
        return evidence_view(hashes, [_str(f) for rows in replies[1::2] for f in rows])

    def _riding_out(self, call: Callable[[], T], what: str) -> T:
        """``call()``, retried through a failover or a moved slot for up to the retry time.

        Only for calls that are safe to repeat: reads, and moving a marker up.
        """
        import redis

        def attempt() -> T:
            try:
                return call()
            except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError):
                self.redirects += 1
                with contextlib.suppress(Exception):  # no node answers yet: the next try says so
                    self.client.nodes_manager.initialize()
                raise

        transient = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError)
        return with_retries(attempt, transient=transient, what=what, give_up_after_s=max(self.retry_s, 1.0), cap_s=2.0)

    def last_offset(self, query: str, topic: str, partition: int) -> int | None:
        """The partition's marker: every slot has counted the offsets at or below it."""
        return self._riding_out(
            lambda: super(RedisClusterToneStore, self).last_offset(query, topic, partition), "a marker read"
        )

    def shard_offsets(self, query: str, topic: str, partition: int, shards: Sequence[int]) -> list[int | None]:
        """Each slot's own marker (one round trip per master)."""

        def read() -> list[int | None]:
            pipe = self.client.pipeline(transaction=False)
            for slot in shards:
                pipe.get(self.slot_marker_key(query, topic, partition, slot))
            return [None if v is None else int(v) for v in pipe.execute()]

        return self._riding_out(read, f"the slot markers of {topic}[{partition}]")

    def advance(self, query: str, topic: str, partition: int, end: int) -> None:
        """Move the partition's marker up to ``end`` (never down: a slower attempt may finish last)."""
        keys = [self._applied_key(query, topic, partition)]
        self._riding_out(lambda: self._advance(keys=keys, args=[end]), f"the marker of {topic}[{partition}]")

    def apply_range(  # noqa: PLR0913 - a step's coordinates
        self,
        query: str,
        topic: str,
        partition: int,
        start: int,
        end: int,
        deltas: Sequence[UserDelta],
        shard: int = 0,
        evidence: StepEvidence | None = None,
    ) -> bool:
        """One slot's step (see :meth:`apply_steps`)."""
        return self.apply_steps(query, topic, partition, [Step(shard, start, end, deltas, evidence)])[0]

    def apply_steps(self, query: str, topic: str, partition: int, steps: Sequence[Step]) -> list[bool]:
        """Apply each slot's step atomically on its master, the steps for one master in one round trip."""
        for step in steps:
            check_range(step.start, step.end)
        if with_evidence := sorted({s.shard for s in steps if s.evidence}):
            # Listed before their steps are applied: a listed slot with no evidence yet reads as empty, and no slot
            # with evidence is ever missing from the list.
            key = self.evidence_slots_key(query)
            self._riding_out(lambda: self.client.sadd(key, *with_evidence), "the shadow evidence's slot list")
        args = [
            self.script_args(
                s.start,
                s.end,
                s.deltas,
                top_here=False,
                evidence=s.evidence,
                evidence_key=self.evidence_key(query, s.shard),
            )
            for s in steps
        ]
        keys = [self.slot_marker_key(query, topic, partition, s.shard) for s in steps]
        results: dict[int, bool] = {}
        tops: list[list[Any]] = []
        pending = list(range(len(steps)))
        asking: dict[int, tuple[str, int]] = {}
        retrying = policy(
            transient=(_PartsLeft,),
            what=f"Redis Cluster apply of {topic}[{partition}]",
            give_up_after_s=max(self.retry_s, 1.0),
            base_s=0.1,
            cap_s=2.0,
        )
        try:
            for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self._read_slot_map()
                    pending, last = self._send_parts(steps, keys, args, pending, asking, results, tops)
                    if pending:
                        raise _PartsLeft(pending, last)
        except _PartsLeft as exc:
            msg = (
                f"Redis Cluster at {self.where}: {exc}, after {retrying.statistics.get('attempt_number')} tries. Is "
                "every slot served (redis-cli --cluster check)? TONE_SINK_RETRY_S sets how long the stream waits"
            )
            raise ServiceError(msg) from exc.last
        try:
            self._write_tops(tops)
        except Exception as exc:  # noqa: BLE001 - the counts are in; top() corrects what it shows
            log.warning("Redis Cluster: top-N scores of %d users not written (%s): they lag", len(tops), exc)
        return [results[i] for i in range(len(steps))]

    def _redirected(self, node: ClusterNode, reply: BaseException, i: int, asking: dict[int, tuple[str, int]]) -> None:
        """Note where step ``i`` goes next after an error reply; raise the reply if retrying cannot help."""
        import redis

        if isinstance(reply, redis.exceptions.AskError):
            asking[i] = reply.node_addr
        elif isinstance(reply, redis.exceptions.NoScriptError):
            self._loaded.discard(node.name)  # a replica promoted since, or a restarted master: load it again
        elif not _retriable(reply):
            raise reply

    def _node_for(self, slot: int, ask: tuple[str, int] | None) -> tuple[ClusterNode, bool]:
        if ask is not None:
            host, port = ask
            node = self.client.get_node(host=host, port=port)
            if node is None:
                self.client.nodes_manager.initialize()
                node = self.client.get_node(host=host, port=port)
            if node is not None:
                return node, True
        return self.client.nodes_manager.get_node_from_slot(slot), False

    def _send(self, node: ClusterNode, ask: bool, keys: list[str], args: list[list[Any]]) -> list[Any]:  # noqa: FBT001
        """The steps for one master in one pipeline; then WAIT on the same connection. Replies in step order."""
        conn = self.client.get_redis_connection(node)
        if self._sha is None or node.name not in self._loaded:
            self._sha = conn.script_load(APPLY_BATCH)
            self._loaded.add(node.name)
        pipe = conn.pipeline(transaction=False)
        for key, arg in zip(keys, args, strict=True):
            if ask:
                pipe.execute_command("ASKING")
            pipe.evalsha(self._sha, 1, key, *arg)
        if self.wait_replicas:
            pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
        replies: list[Any] = pipe.execute(raise_on_error=False)
        if ask:
            replies = [r for i, r in enumerate(replies[: 2 * len(keys)]) if i % 2] + replies[2 * len(keys) :]
        if self.wait_replicas:
            acked = replies.pop()
            if isinstance(acked, BaseException):
                raise acked
            if any(r not in (0, None) and not isinstance(r, BaseException) for r in replies):
                self.check_acked(int(acked), node.name)
        return replies

    def _send_parts(  # noqa: PLR0913 - one try of apply_steps, over its state
        self,
        steps: Sequence[Step],
        keys: list[str],
        args: list[list[Any]],
        pending: list[int],
        asking: dict[int, tuple[str, int]],
        results: dict[int, bool],
        tops: list[list[Any]],
    ) -> tuple[list[int], BaseException | None]:
        """Send the pending steps, each master's in one round trip; those to send again, and why."""
        groups: dict[str, tuple[ClusterNode, bool, list[int]]] = {}
        for i in pending:
            node, ask = self._node_for(steps[i].shard, asking.pop(i, None))
            groups.setdefault(f"{node.name}/{ask}", (node, ask, []))[2].append(i)
        retry: list[int] = []
        last: BaseException | None = None
        for node, ask, idxs in groups.values():
            try:
                replies = self._send(node, ask, [keys[i] for i in idxs], [args[i] for i in idxs])
            except Exception as exc:
                if not _retriable(exc):
                    raise
                retry += idxs
                last = exc
                continue
            for i, reply in zip(idxs, replies, strict=True):
                if isinstance(reply, BaseException):
                    self._redirected(node, reply, i, asking)
                    retry.append(i)
                    last = reply
                    continue
                results[i] = reply != 0
                if reply != 0:
                    tops += json.loads(reply) or []  # cjson writes an empty array as {}
        self.redirects += len(retry)
        return retry, last

    def _read_slot_map(self) -> None:
        """Before a retry: the slots may have moved (a failover, a resharding)."""
        try:
            self.client.nodes_manager.initialize()
        except Exception as exc:  # noqa: BLE001 - no node answers yet: the next try says so
            log.warning("Redis Cluster slot map not read: %s", exc)

    def _write_tops(self, rows: list[list[Any]]) -> None:
        """Write the applied users' scores to the top sets (derived: see the module docstring)."""
        if not rows:
            return
        c = self.config
        pipe = self.client.pipeline(transaction=False)
        for user_id, scored, *rest in rows:
            top, sums = "top", rest[: len(RANKED_LABELS)]
            if len(rest) > len(RANKED_LABELS):  # a tag's row: its sums, then its n and a 1
                n, top = rest[len(RANKED_LABELS)], "tagtop"
                if n > 0:
                    pipe.zadd(f"{c.prefix}tagtop:n", {user_id: float(n)})
                else:
                    pipe.zrem(f"{c.prefix}tagtop:n", user_id)
            for label, prob_sum in zip(RANKED_LABELS, sums, strict=True):
                zkey = f"{c.prefix}{top}:{label}"
                if scored >= c.top_min_count and scored:
                    pipe.zadd(zkey, {user_id: float(prob_sum) / scored})
                else:
                    pipe.zrem(zkey, user_id)
        pipe.execute()

    def _checked(self, by: str, rows: Sequence[tuple[str, float]]) -> tuple[dict[str, float], list[str]]:
        """Each row against its user's hash: the users' current means, and the users gone.

        Gone: expired, or below the minimum count of scored tweets.
        """
        pipe = self.client.pipeline(transaction=False)
        for user_id, _ in rows:
            pipe.hmget(self.user_key(user_id), "n", "scored", f"prob_sum:{by}")
        means, gone = {}, []
        for (user_id, _), (total, scored, prob_sum) in zip(rows, pipe.execute(), strict=True):
            count = int(scored if scored is not None else total or 0)  # no 'scored': all of n were scored
            if count < self.config.top_min_count or not count:
                gone.append(user_id)
            else:
                means[user_id] = float(prob_sum or 0) / count
        return means, gone

    def top(self, by: str, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` users with the highest mean p(``by``), each score checked against the user's hash.

        Reads only (the API may run on a read replica): a page larger than ``n`` is read, stale scores replaced by
        the users' current means and the page ranked again; the stream's sweep (:meth:`prune_top`) repairs the set.
        """
        check_ranked(by)
        zkey = f"{self.config.prefix}top:{by}"
        rows = [(m.decode(), float(s)) for m, s in self.client.zrevrange(zkey, 0, 2 * n + 15, withscores=True)]
        means, _ = self._checked(by, rows)
        ranked = sorted(means.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        return finite_top(ranked[:n])

    def prune_top(self, cursors: dict[str, int], count: int = 500) -> int:
        """Repair up to about ``count`` entries per top set (resuming each set's ZSCAN at ``cursors[label]``).

        Entries of users gone are removed and scores that lag their users' hashes (a task killed between its apply
        and its top write, two attempts' writes landing out of order) rewritten. Returns how many were repaired.
        """
        repaired = 0
        for label in RANKED_LABELS:
            zkey = f"{self.config.prefix}top:{label}"
            cursor, raw = self.client.zscan(zkey, cursors.get(label, 0), count=count)
            cursors[label] = int(cursor)
            rows = [(m.decode(), float(s)) for m, s in raw]
            means, gone = self._checked(label, rows)
            stale = {u: means[u] for u, s in rows if u in means and not math.isclose(means[u], s, rel_tol=1e-9)}
            if gone:
                repaired += int(self.client.zrem(zkey, *gone))
            if stale:
                self.client.zadd(zkey, stale)
                repaired += len(stale)
        return repaired + self._prune_tag_tops(cursors, count)
