"""Live sources against local servers that speak the X filtered-stream and Bluesky Jetstream wire formats."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from producer.live import (
    CURSOR_HEADER,
    Backoff,
    bluesky_jetstream,
    bluesky_record,
    resume_cursor,
    x_filtered_stream,
)
from tone.events import DeleteEvent, ForgetEvent, TweetEvent, parse_event
from tone.kafka.readers import RecordChunk


def x_post(i):
    return {
        "data": {
            "id": f"17{i}",
            "author_id": f"99{i}",
            "text": f"post {i}",
            "lang": "en",
            "created_at": "2026-11-23T10:00:00.000Z",
            "edit_history_tweet_ids": [f"17{i}"],
        },
        "matching_rules": [{"id": "1", "tag": "tone"}],
    }


class FakeSleep:
    def __init__(self):
        self.calls = []

    def __call__(self, seconds):
        self.calls.append(seconds)


@pytest.fixture
def x_server():
    connections = []
    script = [
        (
            200,
            [
                b"\r\n",
                json.dumps(x_post(1)).encode(),
                b"\r\n",
                b'{"errors": [{"title": "operational"}]}',
                json.dumps(x_post(2)).encode(),
            ],
        ),
        (429, []),
        (200, [json.dumps(x_post(3)).encode()]),
    ]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            connections.append((self.path, self.headers.get("Authorization")))
            status, lines = script[min(len(connections), len(script)) - 1]
            if self.headers.get("Authorization") != "Bearer s3cret":
                status, lines = 401, []
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            for line in lines:
                self.wfile.write(line + b"\r\n")
                self.wfile.flush()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", connections
    server.shutdown()


def test_x_stream_yields_posts_skips_noise_and_reconnects_with_backoff(x_server):
    url, connections = x_server
    sleep = FakeSleep()
    messages = list(x_filtered_stream("s3cret", base_url=url, max_reconnects=2, backoff=Backoff(sleep=sleep)))
    events = [parse_event(m.value) for m in messages]
    assert all(isinstance(e, TweetEvent) for e in events)
    assert [(e.id, e.user_id, e.text, e.source) for e in events] == [
        ("171", "991", "post 1", "x"),
        ("172", "992", "post 2", "x"),
        ("173", "993", "post 3", "x"),
    ]
    assert connections[0][0].startswith("/2/tweets/search/stream?tweet.fields=created_at")
    assert sleep.calls[:2] == [0.25, 60.0]  # stream closed -> network backoff; 429 -> rate-limit backoff


def test_x_stream_bad_token_is_a_clear_error(x_server):
    url, _ = x_server
    with pytest.raises(PermissionError, match="TONE_X_BEARER_TOKEN"):
        list(x_filtered_stream("wrong", base_url=url, max_reconnects=0))


def test_backoff_schedules():
    b = Backoff(sleep=lambda s: None)
    assert [b.wait("network") for _ in range(3)] == [0.25, 0.5, 0.75]
    assert [b.wait("http") for _ in range(3)] == [5, 10, 20]
    b.reset()
    assert b.wait("http") == 5


def jet(time_us, did, rkey, text, op="create", collection="app.bsky.feed.post"):
    return json.dumps(
        {
            "did": did,
            "time_us": time_us,
            "kind": "commit",
            "commit": {
                "rev": "r",
                "operation": op,
                "collection": collection,
                "rkey": rkey,
                "cid": "c",
                "record": {"$type": collection, "createdAt": "2026-11-23T10:00:00.123Z", "langs": ["en"], "text": text},
            },
        }
    )


def test_bluesky_jetstream_resumes_from_cursor():
    from websockets.sync.server import serve

    paths = []

    def handler(ws):
        paths.append(ws.request.path)
        if len(paths) == 1:
            ws.send(jet(100, "did:plc:alice", "3k1", "hello from bluesky"))
            ws.send(jet(101, "did:plc:bob", "3k2", "", collection="app.bsky.feed.like"))
            ws.send(json.dumps({"did": "did:plc:x", "time_us": 102, "kind": "identity"}))
        else:
            ws.send(jet(103, "did:plc:bob", "3k3", "second connection"))

    with serve(handler, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        messages = list(
            bluesky_jetstream(
                base_url=f"ws://127.0.0.1:{port}", rewind_s=0, max_reconnects=1, backoff=Backoff(sleep=lambda s: None)
            )
        )
        server.shutdown()
    events = [parse_event(m.value) for m in messages]
    assert [(e.id, e.user_id, e.text, e.lang, e.source) for e in events] == [
        ("did:plc:alice:3k1", "did:plc:alice", "hello from bluesky", "en", "bluesky"),
        ("did:plc:bob:3k3", "did:plc:bob", "second connection", "en", "bluesky"),
    ]
    assert "wantedCollections=app.bsky.feed.post" in paths[0] and "cursor" not in paths[0]
    assert "cursor=102" in paths[1]  # resumes at the last event seen (rewind_s=0)


def account(time_us, did, active, status=None):
    body = {"active": active, "did": did, "seq": 1, "time": "2026-11-23T10:00:00Z"}
    return json.dumps(
        {"did": did, "time_us": time_us, "kind": "account", "account": body | ({"status": status} if status else {})}
    )


def test_bluesky_deletes_and_deleted_accounts_map_to_deletions_and_erasures():
    assert bluesky_record(json.loads(jet(1, "did:plc:a", "k", "x", op="delete"))) == DeleteEvent(
        "did:plc:a:k", "did:plc:a"
    )
    assert bluesky_record(json.loads(account(2, "did:plc:a", False, "deleted"))) == ForgetEvent("did:plc:a")
    # deactivated or taken down may come back: their tweets stay
    assert bluesky_record(json.loads(account(3, "did:plc:a", False, "deactivated"))) is None
    assert bluesky_record(json.loads(account(4, "did:plc:a", True))) is None
    assert (
        bluesky_record(json.loads(jet(5, "did:plc:a", "k", "", op="delete", collection="app.bsky.feed.like"))) is None
    )
    assert (
        bluesky_record(
            {"kind": "commit", "commit": {"operation": "create", "collection": "app.bsky.feed.post", "record": {}}}
        )
        is None
    )
    assert bluesky_record({"kind": "commit", "did": "did:plc:a", "commit": {"operation": "delete",
                           "collection": "app.bsky.feed.post"}}) is None  # fmt: skip


def test_jetstream_rewinds_on_reconnect_and_stamps_each_record_with_its_cursor():
    from websockets.sync.server import serve

    paths = []

    def handler(ws):
        paths.append(ws.request.path)
        if len(paths) == 1:
            ws.send(jet(10_000_000, "did:plc:alice", "3k1", "first"))
            ws.send(jet(12_000_000, "did:plc:alice", "3k2", "gone soon"))
            ws.send(jet(13_000_000, "did:plc:alice", "3k2", "", op="delete"))
            ws.send(account(14_000_000, "did:plc:bob", False, "deleted"))
        else:  # the rewound connection sends the last seconds again: duplicates the stream leaves out
            ws.send(jet(12_000_000, "did:plc:alice", "3k2", "gone soon"))

    with serve(handler, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        messages = list(
            bluesky_jetstream(
                base_url=f"ws://127.0.0.1:{port}", cursor=9_000_000, rewind_s=3.0, max_reconnects=1,
                backoff=Backoff(sleep=lambda s: None),
            )
        )  # fmt: skip
        server.shutdown()
    assert "cursor=9000000" in paths[0]  # as given (resume_cursor rewound it already)
    assert "cursor=11000000" in paths[1]  # the last time_us seen, 14 s, less 3 s
    assert [dict(m.headers)[CURSOR_HEADER] for m in messages] == [b"10000000", b"12000000", b"13000000",
                                                                  b"14000000", b"12000000"]  # fmt: skip
    assert [json.loads(m.value).get("id", "") for m in messages] == ["did:plc:alice:3k1", "did:plc:alice:3k2", "",
                                                                     "", "did:plc:alice:3k2"]  # fmt: skip


class TailReader:
    """The topic's last records (offset -> headers' cursor value), as the Kafka readers hand them over."""

    def __init__(self, partitions):
        self.parts, self.asked = partitions, []

    def partitions(self, topic):
        return sorted(self.parts)

    def beginning_offsets(self, topic, partitions):
        return {p: 0 for p in partitions}

    def end_offsets(self, topic, partitions):
        return {p: len(self.parts[p]) for p in partitions}

    def read_header(self, offsets, name):
        self.asked.append((offsets.partition, offsets.start, offsets.end, name))
        chunk = RecordChunk(offsets.topic, offsets.partition)
        for o in range(offsets.start, offsets.end):
            chunk.add(o, 0, None, self.parts[offsets.partition][o])
        yield chunk


def test_resume_cursor_is_the_newest_cursor_written_less_the_rewind():
    reader = TailReader({0: [b"5000000", None, b"junk"], 1: [None, b"9000000", b"7000000"], 2: []})
    assert resume_cursor(reader, "tweets", rewind_s=2.0, tail=2) == 7_000_000  # 9 s written, 2 s back
    assert [a[:3] for a in reader.asked] == [(0, 1, 3), (1, 1, 3)]  # the tail only; nothing read of an empty one
    assert resume_cursor(TailReader({0: [None, b"x"]}), "tweets", rewind_s=2.0) is None


def x_account(allows_backfill):
    """An X server that drops the first connection after one post and, for some accounts, refuses backfill."""
    asked = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            asked.append(self.path)
            if "backfill_minutes" in self.path and not allows_backfill:
                body = b'{"title": "Invalid Request", "detail": "backfill_minutes is not available for your account"}'
                self.send_response(400)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            self.end_headers()
            self.wfile.write(json.dumps(x_post(len(asked))).encode() + b"\r\n")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, asked


@pytest.mark.parametrize("allows", [True, False])
def test_x_asks_for_backfill_on_reconnect_where_the_account_allows_it(allows):
    server, asked = x_account(allows)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    sleep = FakeSleep()
    messages = list(x_filtered_stream("s3cret", base_url=url, backfill_minutes=2, max_reconnects=2,
                                      backoff=Backoff(sleep=sleep)))  # fmt: skip
    server.shutdown()
    # A restart is a disconnection too: the first connection asks for it as well.
    if allows:
        assert all("backfill_minutes=2" in path for path in asked) and len(asked) == 3
    else:  # refused once: asked again at once without it, and never again in this run
        assert "backfill_minutes=2" in asked[0] and not any("backfill" in path for path in asked[1:])
        assert len(asked) == 4
    assert len(messages) == 3 and sleep.calls == [0.25, 0.25]  # each connection delivered: the backoff starts over
