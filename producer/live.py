"""Live sources: the X API v2 filtered stream and the Bluesky Jetstream firehose, as tweet events.

Both reconnect with backoff and never raise on one bad message: an unusable message is counted and skipped (the
replay's validation then sees only well-formed events). Endpoints are parameters so tests can point them at local
servers that speak the same wire formats.

Neither drops nor doubles what the stream counts: each reader asks for what it may have missed again, and the
stream's dedupe (``TONE_DEDUPE_HORIZON_S``) leaves out what arrives twice.

- X: ``GET {base}/2/tweets/search/stream?tweet.fields=created_at,lang,author_id`` with a bearer token;
  newline-delimited JSON ``{"data": {...}}`` objects and blank keep-alive lines. Backoff follows X's guidance:
  network errors grow linearly (0.25 s steps, up to 16 s), HTTP errors exponentially (from 5 s, up to 320 s),
  HTTP 429 exponentially from 60 s. Every connection asks for ``backfill_minutes`` (X resends what was posted
  in the last minutes: a restart is a disconnection too) until X refuses it for the account (only Pro and
  Enterprise may ask); then it is asked without, at once, for the rest of the run.
- Bluesky: a websocket to ``{base}/subscribe?wantedCollections=app.bsky.feed.post``; JSON events. A post's
  creation is a tweet, its deletion a :class:`~tone.events.DeleteEvent`, an account's deletion a
  :class:`~tone.events.ForgetEvent`. Each record carries Jetstream's cursor (``time_us``) in the Kafka header
  :data:`CURSOR_HEADER`: on reconnect the reader resumes ``rewind_s`` before the last cursor it saw, and after a
  restart :func:`resume_cursor` finds where it stopped in the topic itself (as Kafka Connect keeps a source's
  offsets in Kafka), so what was posted while it was down is read, and what was written before a crash but not
  acknowledged is read again.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from producer.sources import RawTweet
from tone.events import DeleteEvent, ForgetEvent, TweetEvent
from tone.kafka.readers import Offsets, RangeReader
from tone.tags import declared as declared_tags

log = logging.getLogger(__name__)

X_API_BASE = "https://api.x.com"
JETSTREAM_BASE = "wss://jetstream2.us-east.bsky.network"
CURSOR_HEADER = "jetstream_time_us"  # the Kafka header each Jetstream record carries its cursor in
RESUME_TAIL = 100_000  # records read back from each partition's end to find the newest cursor


@dataclass
class Backoff:
    """Delays between reconnects, reset after a connection delivers data."""

    kind: str = "network"  # network | http | rate_limit
    attempt: int = 0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def delay(self) -> float:
        """The next delay for the current kind of failure."""
        if self.kind == "rate_limit":
            return float(min(60 * 2**self.attempt, 960))
        if self.kind == "http":
            return float(min(5 * 2**self.attempt, 320))
        return min(0.25 * (self.attempt + 1), 16.0)

    def wait(self, kind: str) -> float:
        """Sleep for the next delay of ``kind``; returns the seconds slept."""
        if kind != self.kind:
            self.kind, self.attempt = kind, 0
        seconds = self.delay()
        self.attempt += 1
        self.sleep(seconds)
        return seconds

    def reset(self) -> None:
        """Data arrived: start over at the shortest delay."""
        self.attempt = 0


def x_event(message: dict[str, Any]) -> TweetEvent | None:
    """A tweet event from one X filtered-stream message, or None when it is not a usable post."""
    data = message.get("data")
    if not isinstance(data, dict):
        return None
    try:
        created = datetime.fromisoformat(str(data["created_at"]))
        return TweetEvent(str(data["id"]), str(data["author_id"]), str(data["text"]), created, data.get("lang"), "x")
    except (KeyError, ValueError):
        return None


def x_filtered_stream(  # noqa: C901 - one reconnect loop: the failure kinds X tells apart
    bearer_token: str,
    *,
    base_url: str = X_API_BASE,
    backfill_minutes: int = 0,
    max_reconnects: int | None = None,
    backoff: Backoff | None = None,
    timeout: float = 30.0,
) -> Iterator[RawTweet]:
    """Posts from the X API v2 filtered stream (the rules are managed in X's API), reconnecting as X advises."""
    backoff = backoff or Backoff()
    reconnects = 0
    while True:
        params = {"tweet.fields": "created_at,lang,author_id"}
        if backfill_minutes:
            params["backfill_minutes"] = str(backfill_minutes)
        url = f"{base_url}/2/tweets/search/stream?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(
            url, headers={"Authorization": f"Bearer {bearer_token}", "User-Agent": "tweet-tone"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - https URL by default
                for raw_line in response:
                    line = raw_line.strip()
                    if not line:  # keep-alive
                        continue
                    backoff.reset()
                    try:
                        event = x_event(json.loads(line))
                    except json.JSONDecodeError:
                        event = None
                    if event is None:
                        log.warning("skipping an X stream message that is not a post: %.200r", line)
                        continue
                    yield RawTweet(event.to_json(), event.created_at)
            kind = "network"  # the server closed the stream
        except urllib.error.HTTPError as exc:
            if backfill_minutes and exc.code in (400, 403):
                log.warning(
                    "X refused backfill_minutes for this account (HTTP %d: only Pro and Enterprise may ask); "
                    "reconnecting without it: posts made while disconnected are not read. Set "
                    "TONE_X_BACKFILL_MINUTES=0 to not ask",
                    exc.code,
                )
                backfill_minutes = 0
                continue
            if exc.code in (401, 403):
                msg = f"the X API refused the bearer token (HTTP {exc.code}); check TONE_X_BEARER_TOKEN"
                raise PermissionError(msg) from None
            kind = "rate_limit" if exc.code == 429 else "http"
        except (urllib.error.URLError, OSError, TimeoutError):
            kind = "network"
        reconnects += 1
        if max_reconnects is not None and reconnects > max_reconnects:
            return
        log.warning("X stream disconnected (%s); reconnecting in %.2f s", kind, backoff.delay())
        backoff.wait(kind)


POST = "app.bsky.feed.post"


def bluesky_record(message: dict[str, Any]) -> TweetEvent | DeleteEvent | ForgetEvent | None:
    """What one Jetstream message means here: a post created or deleted, an account deleted; else None.

    An account deactivated, suspended or taken down may come back: only ``status: deleted`` erases the user.
    """
    kind, did = message.get("kind"), message.get("did")
    if not isinstance(did, str) or not did:
        return None
    if kind == "account":
        account = message.get("account")
        if isinstance(account, dict) and account.get("active") is False and account.get("status") == "deleted":
            return ForgetEvent(did)
        return None
    commit = message.get("commit")
    if kind != "commit" or not isinstance(commit, dict) or commit.get("collection") != POST:
        return None
    rkey = commit.get("rkey")
    if not isinstance(rkey, str) or not rkey:
        return None
    if commit.get("operation") == "delete":
        return DeleteEvent(f"{did}:{rkey}", did)
    if commit.get("operation") != "create":
        return None  # an edit ("update") keeps the post's first text: it counted once, as it was
    record = commit.get("record") or {}
    try:
        created = datetime.fromisoformat(str(record["createdAt"]))
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        langs = record.get("langs") or [None]
        tags = declared_tags(record) if isinstance(record, dict) else None
        return TweetEvent(f"{did}:{rkey}", did, str(record["text"]), created, langs[0], "bluesky", tags)
    except (KeyError, ValueError, TypeError):
        return None


def bluesky_jetstream(
    *,
    base_url: str = JETSTREAM_BASE,
    cursor: int | None = None,
    rewind_s: float = 5.0,
    max_reconnects: int | None = None,
    backoff: Backoff | None = None,
) -> Iterator[RawTweet]:
    """Posts, deletions and erased accounts from the Jetstream firehose, from ``cursor`` (None: now).

    After a disconnect it resumes ``rewind_s`` before the last ``time_us`` seen, as Jetstream advises.
    """
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect

    backoff = backoff or Backoff()
    reconnects = 0
    while True:
        params = {"wantedCollections": POST}
        if cursor is not None:
            params["cursor"] = str(max(0, cursor))
        url = f"{base_url}/subscribe?" + urllib.parse.urlencode(params)
        last: int | None = None
        try:
            with connect(url, open_timeout=10, max_size=2**22) as ws:
                for frame in ws:
                    backoff.reset()
                    try:
                        message = json.loads(frame)
                    except (json.JSONDecodeError, TypeError):
                        continue
                    if not isinstance(message, dict) or not isinstance(message.get("time_us"), int):
                        continue
                    last = message["time_us"]
                    event = bluesky_record(message)
                    if event is not None:
                        created = event.created_at if isinstance(event, TweetEvent) else None
                        yield RawTweet(event.to_json(), created, ((CURSOR_HEADER, str(last).encode()),))
        except (WebSocketException, OSError, TimeoutError):
            pass
        if last is not None:
            cursor = last - round(rewind_s * 1_000_000)
        reconnects += 1
        if max_reconnects is not None and reconnects > max_reconnects:
            return
        log.warning("Jetstream disconnected; reconnecting from cursor %s in %.2f s", cursor, backoff.delay())
        backoff.wait("network")


def resume_cursor(reader: RangeReader, topic: str, *, rewind_s: float, tail: int = RESUME_TAIL) -> int | None:
    """Where a restarted Jetstream reader resumes: the newest cursor written to ``topic``, less ``rewind_s``.

    Reads the last ``tail`` records of each partition (their header :data:`CURSOR_HEADER` only). None when none
    of them came from Jetstream: the reader then starts from now.
    """
    partitions = reader.partitions(topic)
    begins, ends = reader.beginning_offsets(topic, partitions), reader.end_offsets(topic, partitions)
    newest = None
    for p in partitions:
        start = max(begins[p], ends[p] - tail)
        if start >= ends[p]:
            continue
        for chunk in reader.read_header(Offsets(topic, p, start, ends[p]), CURSOR_HEADER):
            for raw in chunk.values:
                try:
                    value = int(raw or b"")
                except ValueError:
                    continue
                newest = value if newest is None else max(newest, value)
    return None if newest is None else newest - round(rewind_s * 1_000_000)
