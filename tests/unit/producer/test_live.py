"""Live sources against local servers that speak the X filtered-stream and Bluesky Jetstream wire formats."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from producer.live import Backoff, bluesky_event, bluesky_jetstream, x_filtered_stream
from tone.events import TweetEvent, parse_event


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
                base_url=f"ws://127.0.0.1:{port}", max_reconnects=1, backoff=Backoff(sleep=lambda s: None)
            )
        )
        server.shutdown()
    events = [parse_event(m.value) for m in messages]
    assert [(e.id, e.user_id, e.text, e.lang, e.source) for e in events] == [
        ("did:plc:alice:3k1", "did:plc:alice", "hello from bluesky", "en", "bluesky"),
        ("did:plc:bob:3k3", "did:plc:bob", "second connection", "en", "bluesky"),
    ]
    assert "wantedCollections=app.bsky.feed.post" in paths[0] and "cursor" not in paths[0]
    assert "cursor=102" in paths[1]  # resumes after the last event seen


def test_bluesky_event_ignores_deletes_and_bad_records():
    assert bluesky_event(json.loads(jet(1, "did:plc:a", "k", "x", op="delete"))) is None
    assert (
        bluesky_event(
            {"kind": "commit", "commit": {"operation": "create", "collection": "app.bsky.feed.post", "record": {}}}
        )
        is None
    )
