"""What a per-user tone store does, whatever holds the data: the protocol, its parameters, and the read shape.

Exactly once: :meth:`ToneStore.apply_range` applies the tweets of one Kafka partition's offset range
``[start, end]`` only if ``start`` is past the last offset already applied for that query/topic/partition, and
records ``end`` in the same atomic step; a range replayed after a crash changes nothing.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from tone.aggregates.deltas import Ewma, UserDelta
from tone.labels import RANKED_LABELS

if TYPE_CHECKING:
    from tone.settings import Settings


@dataclass(frozen=True)
class StoreConfig:
    """Aggregation parameters (from settings)."""

    prefix: str = "tone:"
    half_life_s: float = 3600.0
    recent_k: int = 20
    top_min_count: int = 5
    bucket_ttl_s: int = 7 * 24 * 3600

    @classmethod
    def from_settings(cls, settings: Settings, *, prefix: str | None = None) -> StoreConfig:
        """The configured parameters (``prefix`` overrides the key prefix, e.g. for a benchmark's own keys)."""
        return cls(
            prefix=prefix or settings.redis_key_prefix,
            half_life_s=settings.ewma_half_life_s,
            recent_k=settings.recent_tweets,
            top_min_count=settings.top_min_count,
            bucket_ttl_s=settings.hourly_bucket_ttl_s,
        )


class ToneStore(Protocol):
    """Read and write per-user aggregates; see the module docstring for the exactly-once rule."""

    config: StoreConfig

    def apply_range(
        self, query: str, topic: str, partition: int, start: int, end: int, deltas: Sequence[UserDelta]
    ) -> bool:
        """Apply the tweets of offsets [start, end] of one partition atomically; False if already applied."""

    def last_offset(self, query: str, topic: str, partition: int) -> int | None:
        """Last Kafka offset of ``topic``/``partition`` whose tweets ``query`` has counted."""

    def user(self, user_id: str) -> dict[str, Any] | None:
        """A user's aggregates (see :func:`user_view`), or None for an unknown user."""

    def hourly(self, user_id: str, hour: str) -> dict[str, int]:
        """Label counts of one UTC hour bucket (``YYYYMMDDHH``)."""

    def top(self, by: str, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` users with the highest mean p(``by``), ``by`` being one of RANKED_LABELS."""

    def write_health(self, query: str, fields: Mapping[str, str]) -> None:
        """Replace the stream ``query``'s health record (written by the driver after each batch)."""

    def health(self, query: str) -> dict[str, str] | None:
        """The stream ``query``'s health record, or None if it never ran."""


# Characters a user id keeps as they are inside Redis keys; every other one (":", "{", "}", "%", "*", spaces,
# anything non-ASCII) becomes %XX of its UTF-8 bytes. The encoding is injective ("%" is encoded too), so no user id
# can spell another user's key or an internal key's suffix ("a:recent", "a:h:2026112310").
_KEY_SAFE: Final = frozenset(string.ascii_letters + string.digits + "_.@-")


def key_part(user_id: str) -> str:
    """The user id as it appears inside Redis keys (see _KEY_SAFE)."""
    if all(c in _KEY_SAFE for c in user_id):
        return user_id
    return "".join(c if c in _KEY_SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in user_id)


def check_range(start: int, end: int) -> None:
    """An offset range must hold at least one offset."""
    if end < start:
        msg = f"offset range [{start}, {end}] is empty"
        raise ValueError(msg)


def check_ranked(by: str) -> None:
    """``by`` must name a label users are ranked by."""
    if by not in RANKED_LABELS:
        msg = f"by must be {' or '.join(RANKED_LABELS)}, got {by!r}"
        raise ValueError(msg)


def user_view(user_id: str, fields: Mapping[str, str], recent: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The read shape of a user from the stored hash fields (both backends store the same field names)."""
    if not fields:
        return None
    n = int(fields.get("n", 0))
    counts = {k.split(":", 1)[1]: int(v) for k, v in fields.items() if k.startswith("count:")}
    means = {k.split(":", 1)[1]: float(v) / n for k, v in fields.items() if k.startswith("prob_sum:") and n}
    ewma = Ewma(float(fields.get("ewma_s", 0)), float(fields.get("ewma_w", 0)), float(fields.get("ewma_t", "-inf")))
    label = max(counts, key=lambda k: counts[k]) if counts else None
    return {
        "user_id": user_id,
        "n": n,
        "counts": counts,
        "mean_probs": means,
        "mean_polarity": float(fields.get("polarity_sum", 0)) / n if n else 0.0,
        "ewma_polarity": ewma.value(),
        "dominant_label": label,
        "first_seen": float(fields["first_seen"]) if "first_seen" in fields else None,
        "last_seen": float(fields["last_seen"]) if "last_seen" in fields else None,
        "recent": recent,
    }


def finite_top(rows: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Leave out scores that are not finite (never written by the stream, but a hand-edited key could hold one)."""
    return [(u, s) for u, s in rows if math.isfinite(s)]
