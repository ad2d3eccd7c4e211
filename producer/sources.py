"""Where tweets come from: files (JSONL/CSV), labelled datasets with synthetic users, or a synthetic replay set.

Every source yields raw message values (bytes) with an optional event time used by ``--speedup``; validation
happens once, in :mod:`producer.replay`, with the same schema the stream applies.
"""

from __future__ import annotations

import csv
import itertools
import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tone.errors import ToneError
from tone.events import TweetEvent

SYNTHETIC_START = datetime(2026, 1, 1, tzinfo=UTC)


class SourceError(ToneError):
    """A source file cannot be read; the message names the file and the expected format."""


@dataclass(frozen=True, slots=True)
class RawTweet:
    """One message to send: its bytes, (when known) the event time for timestamp-paced replay, and Kafka headers."""

    value: bytes
    created_at: datetime | None = None
    headers: tuple[tuple[str, bytes], ...] = ()  # a live source's position (see producer.live.CURSOR_HEADER)


def _event_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def read_jsonl(path: Path) -> Iterator[RawTweet]:
    """One tweet per line, sent as it is (invalid lines included: the replay decides what to do with them)."""
    with Path(path).open("rb") as fh:
        for raw_line in fh:
            line = raw_line.rstrip(b"\r\n")
            if not line.strip():
                continue
            created_at = None
            try:
                created_at = _event_time(json.loads(line).get("created_at"))
            except (ValueError, AttributeError):
                pass
            yield RawTweet(line, created_at)


def read_csv(path: Path) -> Iterator[RawTweet]:
    """A CSV with a header holding at least id, user_id, text, created_at; each row becomes a JSON message."""
    with Path(path).open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"id", "user_id", "text", "created_at"} - set(reader.fieldnames or [])
        if missing:
            msg = f"{path}: CSV header lacks {', '.join(sorted(missing))} (needs id,user_id,text,created_at)"
            raise SourceError(msg)
        for row in reader:
            obj = {k: v for k, v in row.items() if k and v not in (None, "")}
            yield RawTweet(json.dumps(obj, ensure_ascii=False).encode(), _event_time(row.get("created_at")))


def read_file(path: Path) -> Iterator[RawTweet]:
    """Pick the reader by extension (.jsonl/.ndjson/.json lines, or .csv)."""
    path = Path(path)
    if not path.is_file():
        msg = f"{path} does not exist"
        raise SourceError(msg)
    if path.suffix == ".csv":
        return read_csv(path)
    if path.suffix in (".jsonl", ".ndjson", ".json"):
        return read_jsonl(path)
    msg = f"{path}: unsupported file type {path.suffix!r}; use .jsonl or .csv"
    raise SourceError(msg)


def zipf_weights(users: int, exponent: float = 1.1) -> list[float]:
    """P(user k) proportional to 1/k^s: a few very active users and a long tail, like a real feed."""
    return [1.0 / (k**exponent) for k in range(1, users + 1)]


def synthetic_events(
    texts: Sequence[str],
    n: int,
    *,
    users: int = 1000,
    exponent: float = 1.1,
    seed: int = 7,
    start: datetime = SYNTHETIC_START,
    per_second: float = 1000.0,
    lang: str | None = "en",
) -> Iterator[TweetEvent]:
    """``n`` events from real texts, with Zipf-distributed user ids and increasing timestamps.

    ``lang``: the language each event declares (the texts are English data sets); None leaves it to the stream's
    detector.
    """
    if not texts:
        msg = "synthetic replay needs at least one text"
        raise SourceError(msg)
    rng = random.Random(seed)
    weights = list(itertools.accumulate(zipf_weights(users, exponent)))
    step = timedelta(seconds=1.0 / per_second)
    for i in range(n):
        user = rng.choices(range(1, users + 1), cum_weights=weights)[0]
        yield TweetEvent(
            f"syn-{seed}-{i}", f"user{user:05d}", texts[i % len(texts)], start + i * step, lang, "synthetic"
        )


def dataset_events(texts: Sequence[str], *, users: int = 200, seed: int = 7) -> Iterator[TweetEvent]:
    """A labelled dataset's texts, once each, as tweets by ``users`` synthetic users."""
    return synthetic_events(texts, len(texts), users=users, seed=seed, per_second=10.0)


def raw_from(make_events: Callable[[], Iterator[TweetEvent]]) -> Iterator[RawTweet]:
    """Events from a fresh ``make_events()`` as messages."""
    for event in make_events():
        yield RawTweet(event.to_json(), event.created_at)
