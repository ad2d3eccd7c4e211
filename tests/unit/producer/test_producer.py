import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from producer import sources
from producer.replay import Pacer, looped, replay
from tone.events import TweetEvent, parse_event


class ListWriter:
    """In-memory stand-in for the Kafka writer (unit tests only; integration tests use the real broker)."""

    def __init__(self):
        self.sent = []
        self.flushed = False

    def send_raw(self, key, value, headers=None):
        self.sent.append((key, value))
        self.headers = getattr(self, "headers", []) + [headers]

    def flush(self, timeout=None):
        self.flushed = True


def _line(i, **changes):
    obj = {"id": str(i), "user_id": f"u{i % 3}", "text": f"tweet {i}", "created_at": "2026-01-01T00:00:00Z"}
    return json.dumps({**obj, **changes}).encode()


def test_invalid_lines_are_counted_not_sent_unless_asked(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\n".join([_line(1), b"{broken", _line(2, text=""), _line(3)]) + b"\n\n")
    writer = ListWriter()
    summary = replay(sources.read_file(path), writer)
    assert (summary.sent, summary.valid, summary.invalid) == (2, 2, 2)
    assert summary.reasons == Counter({"invalid_json": 1, "empty_text": 1})
    assert [k for k, _ in writer.sent] == [b"u1", b"u0"]  # keyed by user id
    assert writer.flushed

    everything = ListWriter()
    summary = replay(sources.read_file(path), everything, send_invalid=True)
    assert summary.sent == 4
    assert everything.sent[1] == (None, b"{broken")  # original bytes, no key


def test_deletions_and_erasures_are_sent_keyed_by_their_user(tmp_path):
    path = tmp_path / "controls.jsonl"
    controls = [{"delete": {"id": "7", "user_id": "u1"}}, {"forget": {"user_id": "u2"}}, {"delete": {"id": "8"}}]
    path.write_text("\n".join([_line(1).decode(), *map(json.dumps, controls)]))
    writer = ListWriter()
    summary = replay(sources.read_file(path), writer)
    assert (summary.sent, summary.valid, summary.controls, summary.invalid) == (3, 1, 2, 1)
    assert [k for k, _ in writer.sent] == [b"u1", b"u1", b"u2"]  # each with its user's tweets, in order
    assert summary.reasons == Counter({"missing_field": 1})


def test_csv_source(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,user_id,text,created_at,lang\n1,alice,hello there,2026-01-01T00:00:00+00:00,en\n")
    (msg,) = list(sources.read_file(path))
    event = parse_event(msg.value)
    assert isinstance(event, TweetEvent) and event.user_id == "alice" and event.lang == "en"
    bad = tmp_path / "bad.csv"
    bad.write_text("user,body\n")
    with pytest.raises(sources.SourceError, match="lacks created_at, id, text, user_id"):
        list(sources.read_file(bad))


def test_synthetic_events_are_valid_zipf_and_increasing():
    events = list(sources.synthetic_events(["a", "b", "c"], 5000, users=100, seed=1))
    assert len({e.id for e in events}) == 5000
    assert all(isinstance(parse_event(e.to_json()), TweetEvent) for e in events[:100])
    assert all(b.created_at > a.created_at for a, b in zip(events, events[1:], strict=False))
    counts = Counter(e.user_id for e in events).most_common()
    assert counts[0][0] == "user00001"  # rank 1 is the most active
    assert counts[0][1] > 5 * counts[len(counts) // 2][1]  # a long tail
    assert list(sources.synthetic_events(["a"], 10, seed=1)) == list(sources.synthetic_events(["a"], 10, seed=1))


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_pacer_fixed_rate():
    clock = FakeClock()
    pacer = Pacer(rate=100, clock=clock, sleep=clock.sleep)
    for _ in range(201):
        pacer.wait(None)
    assert clock.now == pytest.approx(2.0)


def test_pacer_speedup_follows_event_time():
    clock = FakeClock()
    pacer = Pacer(speedup=10, clock=clock, sleep=clock.sleep)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for offset in (0, 5, 5, 30):
        pacer.wait(t0 + timedelta(seconds=offset))
    assert clock.now == pytest.approx(3.0)


def test_pacer_rejects_bad_values():
    with pytest.raises(ValueError, match="not both"):
        Pacer(rate=1, speedup=1)
    with pytest.raises(ValueError, match="> 0"):
        Pacer(rate=0)


def test_loop_and_limit():
    writer = ListWriter()
    summary = replay(looped(lambda: iter([sources.RawTweet(_line(1))]), loop=True), writer, limit=25)
    assert summary.sent == 25
