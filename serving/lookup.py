"""Live per-user lookups over the aggregates (the CLI and the HTTP API share these). No torch, no Spark."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tone.aggregates.store import ToneStore


def iso(epoch: float | None) -> str | None:
    """Epoch seconds as an ISO-8601 UTC string."""
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def user_tone(store: ToneStore, user_id: str) -> dict[str, Any] | None:
    """A user's aggregates in their public shape, or None when the user was never seen."""
    agg = store.user(user_id)
    if agg is None:
        return None
    return {
        "user_id": agg["user_id"],
        "tweets": agg["n"],
        "dominant_label": agg["dominant_label"],
        "counts": agg["counts"],
        "mean_probs": {k: round(v, 4) for k, v in agg["mean_probs"].items()},
        "mean_polarity": round(agg["mean_polarity"], 4),
        "ewma_polarity": None if agg["ewma_polarity"] is None else round(agg["ewma_polarity"], 4),
        "first_seen": iso(agg["first_seen"]),
        "last_seen": iso(agg["last_seen"]),
        "recent": [{**r, "t": iso(r["t"])} for r in agg["recent"]],
    }
