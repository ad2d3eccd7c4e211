"""Coverage-guided fuzzing of the tweet parser with atheris (run by tests/unit/tone/test_events_properties.py).

Any byte string must give a TweetEvent or an Invalid with a known reason, never an exception; and an event must be
safe for everything downstream: its user id encodes to a key part, its time has a UTC hour bucket, and its scored
form serialises. ``python tests/fuzz/fuzz_events.py -runs=N`` runs N inputs; a failure exits non-zero.
"""

import sys

import atheris

with atheris.instrument_imports():
    from tone.aggregates.deltas import hour_bucket
    from tone.aggregates.store import key_part
    from tone.events import REASONS, Invalid, ScoredTweet, TweetEvent, parse_event


def check(data: bytes) -> None:
    result = parse_event(data, max_text_chars=4000, max_message_bytes=65536)
    if isinstance(result, Invalid):
        assert result.reason in REASONS, result
        return
    assert isinstance(result, TweetEvent)
    assert key_part(result.user_id)
    hour_bucket(result.created_at.timestamp())
    ScoredTweet(result.id, result.user_id, result.created_at, "neutral", {"neutral": 1.0}, 0.0, "v").to_json()


def main() -> None:
    seeds = sys.argv[1:]
    atheris.Setup([sys.argv[0], *seeds], check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
