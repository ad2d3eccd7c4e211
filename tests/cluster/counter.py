"""A process that counts a synthetic partition into the Redis Cluster store, range by range, for the kill tests.

``python -m tests.cluster.counter URL PREFIX FIRST TOTAL SEED``: counts offsets FIRST..TOTAL-1 of partition 0 of
topic ``t`` for query ``q``, in ranges and steps of random sizes, as a stream's tasks would; prints ``done`` at the
end. The records are a function of SEED and the offset (:func:`records`), so the test knows what must be counted.
"""

from __future__ import annotations

import random
import sys

from tone.aggregates.deltas import Scored
from tone.aggregates.store import count_records

USERS = [f"user{i}" for i in range(1500)] + ["a:b{c}", "{x}", "%41", "user0:recent", "é x", "}{", "*"]
PROBS = {"negative": 0.2, "neutral": 0.3, "positive": 0.5}


def records(total: int, seed: int) -> list[tuple[int, Scored]]:
    """One record per offset except about 1 in 10 (an invalid record or a transaction marker: no record)."""
    rng = random.Random(seed)
    out = []
    for offset in range(total):
        if rng.random() < 0.1:
            continue
        user = rng.choice(USERS)
        out.append((offset, Scored(user, f"t{offset}", 1_795_000_000.0 + offset, "positive", PROBS, 0.4, "ok", "v")))
    return out


def main() -> None:
    url, prefix, first, total, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    from tone.aggregates.factory import open_store
    from tone.settings import load_settings

    store = open_store(load_settings(redis_url=url, redis_cluster=True, redis_key_prefix=prefix, top_min_count=1))
    recs = records(total, seed)
    rng = random.Random()
    pos = first
    while pos < total:
        end = min(total - 1, pos + rng.randint(50, 400))
        part = [r for r in recs if pos <= r[0] <= end]
        count_records(store, "q", "t", 0, part, end, step=rng.randint(5, 100))
        pos = end + 1
    print("done", flush=True)


if __name__ == "__main__":
    main()
