"""`tone bench store`: what one backlog costs Redis, and what a lookup waits behind the stream's writes.

For each step size, ``users`` new users' tweets (one each, offsets of one partition) are counted with
:func:`tone.aggregates.store.count_records` under a key prefix of the bench's own, while a thread looks users up
(as the API does) and times each lookup: the longest lookup is what a reader waits behind one atomic step. Then the
bytes and keys one user costs (``MEMORY USAGE`` of every key of a sample of users, after the whole set is written).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from tone.aggregates.deltas import Scored, hour_bucket
from tone.aggregates.factory import open_store
from tone.aggregates.store import TAG_RANKS, count_records
from tone.settings import Settings

PROBS = {"negative": 0.2, "neutral": 0.3, "positive": 0.5}
TEXT = "just landed, the crew was lovely and the coffee was terrible, as usual"  # a typical tweet's length


def _records(users: int, t0: float) -> list[tuple[int, Scored]]:
    return [
        (o, Scored(f"user{o:09d}", f"{1850000000000000000 + o}", t0 + o / 1000, "positive", PROBS, 0.4, TEXT, "v"))
        for o in range(users)
    ]


def _lookups(store: Any, users: int, stop: threading.Event, waits: list[float]) -> None:
    rng = random.Random(7)
    while not stop.is_set():
        t = time.perf_counter()
        store.user(f"user{rng.randrange(users):09d}")
        waits.append(time.perf_counter() - t)


def _bytes_per_user(store: Any, users: int, t0: float, name: str = "user{:09d}") -> int:
    """Mean ``MEMORY USAGE`` of every key of 500 sampled users.

    The hash, the recent list, an hourly bucket and, with TONE_DEDUPE_HORIZON_S on, the tweet ids (with their
    contributions).
    """
    sizes = []
    for o in random.Random(1).sample(range(users), min(users, 500)):
        uid = name.format(o)
        hour = hour_bucket(t0 + o / 1000) if name.startswith("user") else hour_bucket(t0)
        keys = [store.user_key(uid), store.recent_key(uid), store.hour_key(uid, hour)]
        if store.config.dedupe_horizon_s:
            keys.append(store.ids_key(uid))
        if not all(store.client.exists(k) for k in keys):
            msg = f"expected {len(keys)} keys for {uid}"
            raise RuntimeError(msg)
        sizes.append(sum(store.client.memory_usage(k, samples=0) or 0 for k in keys))
    return round(sum(sizes) / len(sizes))


def _bytes_per_tag(store: Any, t0: float, offset: int, tags: int = 20_000) -> dict[str, Any]:
    """What a tag seen once costs (spam's case: millions of tags of one tweet each).

    Its hash, recent list and minute bucket (mean ``MEMORY USAGE`` over 500 of ``tags`` tags counted), and its share
    of the tags' top sets.
    """
    records = [
        (
            offset + i,
            Scored(
                f"tagger{i % 1000}", f"g{i}", t0 + i / 1000, "negative", PROBS, -0.4, TEXT, "v", tags=(f"#spam{i:07d}",)
            ),
        )  # fmt: skip
        for i in range(tags)
    ]
    before = sum(store.client.memory_usage(f"{store.config.prefix}tagtop:{by}", samples=0) or 0 for by in TAG_RANKS)
    count_records(store, "bench", "t", 2, records, offset + tags - 1)
    after = sum(store.client.memory_usage(f"{store.config.prefix}tagtop:{by}", samples=0) or 0 for by in TAG_RANKS)
    sizes = []
    for i in random.Random(2).sample(range(tags), 500):
        key = store.tag_key(f"#spam{i:07d}")
        keys = [key, f"{key}:recent", f"{key}:m:{hour_bucket(t0 + i / 1000)}"]
        if not all(store.client.exists(k) for k in keys):
            msg = f"expected {len(keys)} keys for #spam{i:07d}"
            raise RuntimeError(msg)
        sizes.append(sum(store.client.memory_usage(k, samples=0) or 0 for k in keys))
    per_tag = round(sum(sizes) / len(sizes))
    in_tops = round((after - before) / tags)
    return {
        "bytes_per_tag_1_tweet": per_tag,
        "bytes_per_tag_in_top_sets": in_tops,
        "keys_per_tag": 3,
        "gib_per_million_tags": round((per_tag + in_tops) * 1_000_000 / 2**30, 2),
    }


def run_store_bench(settings: Settings, users: int, steps: list[int], say: Callable[[str], None]) -> dict[str, Any]:
    """Rows per step size (steps, total seconds, users/s, lookups made, their p50/p99/max), then bytes per user."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    store = open_store(settings, prefix=prefix)
    rows = []
    t0 = 1_795_428_000.0
    try:
        for step in steps:
            say(f"step {step}: counting {users:,} new users' tweets with lookups beside")
            for key in store.client.scan_iter(f"{prefix}*", count=10_000):
                store.client.delete(key)
            records = _records(users, t0)
            stop, waits = threading.Event(), list[float]()
            reader = threading.Thread(target=_lookups, args=(open_store(settings, prefix=prefix), users, stop, waits))
            reader.start()
            started = time.perf_counter()
            done = count_records(store, "bench", "t", 0, records, users - 1, step=step)
            seconds = time.perf_counter() - started
            stop.set()
            reader.join()
            waits.sort()
            rows.append(
                {
                    "step": step,
                    "atomic_steps": done.steps,
                    "seconds": round(seconds, 3),
                    "users_per_s": round(users / seconds),
                    "lookups": len(waits),
                    "lookup_p50_ms": round(1000 * waits[len(waits) // 2], 2) if waits else None,
                    "lookup_p99_ms": round(1000 * waits[int(len(waits) * 0.99)], 2) if waits else None,
                    "lookup_max_ms": round(1000 * waits[-1], 1) if waits else None,
                }
            )
        per_user = {
            "bytes_per_user_1_tweet": _bytes_per_user(store, users, t0),
            # hash, recent list, one hourly bucket, the dedupe ids (checked in _bytes_per_user)
            "keys_per_user": 4 if store.config.dedupe_horizon_s else 3,
        }
        # A user with a full recent list (TONE_RECENT_TWEETS tweets, all in one hour): the upper end per user.
        k = store.config.recent_k
        heavy = [
            (users + i, Scored(f"heavy{i // k:06d}", f"h{i}", t0 + i % k, "negative", PROBS, -0.4, TEXT, "v"))
            for i in range(500 * k)
        ]
        count_records(store, "bench", "t", 1, heavy, users + len(heavy) - 1)
        per_user["bytes_per_user_full_recent"] = _bytes_per_user(store, 500, t0, name="heavy{:06d}")
        per_user["recent_tweets"] = k
        if store.config.tags:
            per_user |= _bytes_per_tag(store, t0, users + len(heavy))
    finally:
        for key in store.client.scan_iter(f"{prefix}*", count=10_000):
            store.client.delete(key)
    return {"users": users, "rows": rows, **per_user}
