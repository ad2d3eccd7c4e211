"""Live sources: the X API v2 filtered stream and the Bluesky Jetstream firehose, as tweet events.

Both reconnect with backoff and never raise on one bad message: an unusable message is counted and skipped (the
replay's validation then sees only well-formed events). Endpoints are parameters so tests can point them at local
servers that speak the same wire formats.

- X: ``GET {base}/2/tweets/search/stream?tweet.fields=created_at,lang,author_id`` with a bearer token;
  newline-delimited JSON ``{"data": {...}}`` objects and blank keep-alive lines. Backoff follows X's guidance:
  network errors grow linearly (0.25 s steps, up to 16 s), HTTP errors exponentially (from 5 s, up to 320 s),
  HTTP 429 exponentially from 60 s.
- Bluesky: a websocket to ``{base}/subscribe?wantedCollections=app.bsky.feed.post``; JSON commit events. On
  reconnect the ``cursor`` parameter (the last ``time_us`` seen) resumes without a gap.
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
from tone.events import TweetEvent

log = logging.getLogger(__name__)

X_API_BASE = "https://api.x.com"
JETSTREAM_BASE = "wss://jetstream2.us-east.bsky.network"


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


def x_filtered_stream(
    bearer_token: str,
    *,
    base_url: str = X_API_BASE,
    max_reconnects: int | None = None,
    backoff: Backoff | None = None,
    timeout: float = 30.0,
) -> Iterator[RawTweet]:
    """Posts from the X API v2 filtered stream (the rules are managed in X's API), reconnecting as X advises."""
    url = f"{base_url}/2/tweets/search/stream?" + urllib.parse.urlencode({"tweet.fields": "created_at,lang,author_id"})
    backoff = backoff or Backoff()
    reconnects = 0
    while True:
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


def bluesky_event(message: dict[str, Any]) -> TweetEvent | None:
    """A tweet event from one Jetstream message (a created ``app.bsky.feed.post``), else None."""
    commit = message.get("commit")
    if message.get("kind") != "commit" or not isinstance(commit, dict):
        return None
    if commit.get("operation") != "create" or commit.get("collection") != "app.bsky.feed.post":
        return None
    record = commit.get("record") or {}
    try:
        created = datetime.fromisoformat(str(record["createdAt"]))
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        did = str(message["did"])
        langs = record.get("langs") or [None]
        return TweetEvent(f"{did}:{commit['rkey']}", did, str(record["text"]), created, langs[0], "bluesky")
    except (KeyError, ValueError, TypeError):
        return None


def bluesky_jetstream(
    *,
    base_url: str = JETSTREAM_BASE,
    cursor: int | None = None,
    max_reconnects: int | None = None,
    backoff: Backoff | None = None,
) -> Iterator[RawTweet]:
    """Posts from the Bluesky Jetstream firehose, resuming from the last ``time_us`` after a reconnect."""
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect

    backoff = backoff or Backoff()
    reconnects = 0
    while True:
        params = {"wantedCollections": "app.bsky.feed.post"}
        if cursor is not None:
            params["cursor"] = str(cursor)
        url = f"{base_url}/subscribe?" + urllib.parse.urlencode(params)
        try:
            with connect(url, open_timeout=10, max_size=2**22) as ws:
                for frame in ws:
                    backoff.reset()
                    try:
                        message = json.loads(frame)
                    except (json.JSONDecodeError, TypeError):
                        continue
                    if isinstance(message.get("time_us"), int):
                        cursor = message["time_us"]
                    event = bluesky_event(message)
                    if event is not None:
                        yield RawTweet(event.to_json(), event.created_at)
        except (WebSocketException, OSError, TimeoutError):
            pass
        reconnects += 1
        if max_reconnects is not None and reconnects > max_reconnects:
            return
        log.warning("Jetstream disconnected; reconnecting from cursor %s in %.2f s", cursor, backoff.delay())
        backoff.wait("network")
