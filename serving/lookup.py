"""Live per-user lookups over the aggregates (the CLI and the HTTP API share these). No torch, no Spark."""

from __future__ import annotations

import json
from typing import Any

from tone.aggregates.store import ToneStore, public_view


def user_tone(store: ToneStore, user_id: str) -> dict[str, Any] | None:
    """A user's aggregates in their public shape, or None when the user was never seen."""
    agg = store.user(user_id)
    return None if agg is None else tone_view(agg)


def tone_view(agg: dict[str, Any]) -> dict[str, Any]:
    """The public shape of a user's aggregates (``ToneStore.user``'s answer).

    ``tweets``: every counted tweet; ``languages``: the same by language (most first); ``scored``: those a route
    scored. ``counts``, the means and the EWMA are the tone of the scored ones.
    """
    return {"user_id": agg["user_id"], **public_view(agg)}


def hourly_tone(store: ToneStore, user_id: str, hours: int, end: float) -> list[dict[str, Any]]:
    """Label counts per UTC hour for the ``hours`` hours up to ``end`` (epoch s), oldest first; empty hours included."""
    from tone.aggregates.deltas import hour_bucket

    wanted = [hour_bucket(end - back * 3600) for back in range(hours - 1, -1, -1)]
    return [
        {"hour": hour, "counts": counts}
        for hour, counts in zip(wanted, store.hourly_many(user_id, wanted), strict=True)
    ]


COUNTS = ("batches", "records", "invalid", "restarts", "unscored", "duplicates", "deletes", "deletes_unmatched",
          "forgets", "forgotten")  # fmt: skip


def stream_health(store: ToneStore, query: str, now: float) -> dict[str, Any] | None:
    """The stream's health record (written after each batch) with its JSON fields decoded, or None."""
    raw = store.health(query)
    if raw is None:
        return None
    health: dict[str, Any] = {"query": query}
    for key, value in raw.items():
        if key in (
            "lag",
            "dead_letters",
            "drift",
            "model_versions",
            "refused_on_workers",
            "languages",
            "shadow",
            "conversation",
        ):
            health[key] = json.loads(value)
        elif key in COUNTS:
            health[key] = int(value)
        elif key in ("updated_at", "last_batch_at", "rate"):
            health[key] = float(value)
        else:
            health[key] = value
    health["lag_total"] = sum(health.get("lag", {}).values())
    health["last_batch_age_s"] = round(now - health.get("last_batch_at", now), 1)
    return health
