import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tone import events as schema
from tone.events import Invalid, TweetEvent, parse_event, validate_event

GOOD = {
    "id": "1850000000000000001",
    "user_id": "john_doe",
    "text": "loving the new release @Bob12 https://t.co/x",
    "created_at": "2026-11-23T10:00:00+00:00",
    "lang": "en",
    "source": "replay",
}


def raw(**changes):
    obj = {**GOOD, **changes}
    return json.dumps({k: v for k, v in obj.items() if v is not ...}).encode()


def test_valid_event_round_trips():
    event = parse_event(raw())
    assert isinstance(event, TweetEvent)
    assert event.created_at == datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert parse_event(event.to_json()) == event


def test_z_suffix_and_offsets_are_accepted():
    event = parse_event(raw(created_at="2026-11-23T12:00:00.123+02:00"))
    assert isinstance(event, TweetEvent)
    assert event.created_at.utcoffset() == timedelta(hours=2)
    assert isinstance(parse_event(raw(created_at="2026-11-23T10:00:00Z")), TweetEvent)


def test_integer_ids_become_strings_and_optional_fields_may_be_absent():
    event = parse_event(raw(id=42, user_id=7, lang=..., source=...))
    assert isinstance(event, TweetEvent)
    assert (event.id, event.user_id, event.lang, event.source) == ("42", "7", None, None)


def test_unicode_text_survives():
    event = parse_event(raw(text="ça va 😀 — très bien"))
    assert isinstance(event, TweetEvent)
    assert event.text == "ça va 😀 — très bien"
    assert parse_event(event.to_json()) == event


@pytest.mark.parametrize(
    ("value", "reason", "detail"),
    [
        (b"not json", schema.INVALID_JSON, "Expecting value"),
        (b'{"id": "1", ', schema.INVALID_JSON, "line 1"),
        (b"\xff\xfe{}", schema.INVALID_UTF8, "byte 0"),
        (b'{"text": "caf\xe9"}', schema.INVALID_UTF8, "not valid UTF-8"),
        (None, schema.INVALID_JSON, "null"),
        (b"[1, 2]", schema.NOT_AN_OBJECT, "list"),
        (b'"a string"', schema.NOT_AN_OBJECT, "str"),
        (b"[" * 100_000 + b"]" * 100_000, schema.OVERSIZED_MESSAGE, "bytes"),
        (raw(id=...), schema.MISSING_FIELD, "id is required"),
        (raw(user_id=...), schema.MISSING_FIELD, "user_id is required"),
        (raw(user_id=None), schema.MISSING_FIELD, "user_id is required"),
        (raw(text=...), schema.MISSING_FIELD, "text is required"),
        (raw(created_at=...), schema.MISSING_FIELD, "created_at is required"),
        (raw(text=5), schema.WRONG_TYPE, "text must be a string, got int"),
        (raw(user_id=["a"]), schema.WRONG_TYPE, "user_id must be a string or integer, got list"),
        (raw(id=True), schema.WRONG_TYPE, "got bool"),
        (raw(id=1.5), schema.WRONG_TYPE, "got float"),
        (raw(created_at=1700000000), schema.WRONG_TYPE, "created_at must be an ISO-8601 string"),
        (raw(user_id=""), schema.INVALID_VALUE, "must not be empty"),
        (raw(id="a b"), schema.INVALID_VALUE, "may hold only"),
        (raw(id="x" * 65), schema.INVALID_VALUE, "more than 64"),
        (raw(user_id="x" * 257), schema.INVALID_VALUE, "more than 256"),
        (raw(user_id="a\x00b"), schema.INVALID_VALUE, "control character U+0000"),
        (raw(user_id="tab\there"), schema.INVALID_VALUE, "control character U+0009"),
        (raw(user_id="   "), schema.INVALID_VALUE, "only whitespace"),
        (
            b'{"id":"1","user_id":"\\ud800","text":"x","created_at":"2026-11-23T10:00:00Z"}',
            schema.INVALID_VALUE,
            "surrogate",
        ),
        (raw(text=""), schema.EMPTY_TEXT, "empty"),
        (raw(text=" \n\t "), schema.EMPTY_TEXT, "whitespace"),
        (raw(text="x" * 4001), schema.OVERSIZED_TEXT, "4001 characters"),
        (raw(created_at="2026-11-23T10:00:00"), schema.NAIVE_TIMESTAMP, "no timezone"),
        (raw(created_at="yesterday"), schema.INVALID_TIMESTAMP, "not ISO-8601"),
        (raw(created_at="2026-13-45T10:00:00Z"), schema.INVALID_TIMESTAMP, "not ISO-8601"),
        # poison values that passed validation and crashed the stream (UTC year 10000 / year 0)
        (raw(created_at="9999-12-31T23:59:59-23:59"), schema.INVALID_TIMESTAMP, "out of range"),
        (raw(created_at="0001-01-01T00:00:00+01:00"), schema.INVALID_TIMESTAMP, "out of range"),
        (b'{"id": 1' + b"0" * 5000 + b', "user_id": "u"}', schema.INVALID_JSON, "too large"),
        (raw(id=float("nan")), schema.WRONG_TYPE, "got float"),
        (raw(user_id=float("inf")), schema.WRONG_TYPE, "got float"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, schema.INVALID_JSON, "nested too deeply"),
        (
            b'{"id":"1","user_id":"u","text":"\\ud800 x","created_at":"2026-11-23T10:00:00Z"}',
            schema.INVALID_UTF8,
            "surrogate",
        ),
    ],
)
def test_bad_input_gives_a_precise_reason(value, reason, detail):
    result = parse_event(value)
    assert isinstance(result, Invalid), result
    assert result.reason == reason
    assert detail in result.detail
    assert result.reason in schema.REASONS
    assert not result


def test_limits_are_configurable():
    long_text = raw(text="x" * 300)
    assert isinstance(parse_event(long_text), TweetEvent)
    assert parse_event(long_text, max_text_chars=280).reason == schema.OVERSIZED_TEXT
    assert parse_event(long_text, max_message_bytes=256).reason == schema.OVERSIZED_MESSAGE


def test_str_input_is_accepted_like_bytes():
    assert parse_event(raw().decode()) == parse_event(raw())


def test_validate_event_on_decoded_object():
    event = validate_event({**GOOD, "created_at": "2026-01-01T00:00:00-05:00"})
    assert isinstance(event, TweetEvent)
    assert event.created_at.tzinfo == timezone(timedelta(hours=-5))


def test_never_raises_on_arbitrary_bytes():
    import random

    rng = random.Random(7)
    for _ in range(2000):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        assert isinstance(parse_event(blob), Invalid | TweetEvent)


def test_scored_tweet_wire_format_round_trips():
    from datetime import UTC, datetime

    from tone.events import ScoredTweet

    tweet = ScoredTweet(
        "1", "u", datetime(2026, 11, 23, 10, tzinfo=UTC), "positive", {"positive": 0.9, "negative": 0.1}, 0.8, "v1"
    )
    raw = tweet.to_json()
    assert json.loads(raw)["created_at"] == "2026-11-23T10:00:00+00:00"
    assert ScoredTweet.from_json(raw) == tweet


def test_one_user_id_rule():
    from tone.events import check_user_id

    for ok in ("alice_01@x.y-z", "a:recent", "a:h:2026112310", "*", "{x}", "x" * 256, "ünïcødé 🙂", " spaced "):
        assert check_user_id(ok) is None, ok
    assert "more than 256" in check_user_id("a" * 257)
    assert "empty" in check_user_id("")
    assert "control character" in check_user_id("a\nb")
    # A trailing newline is a control character too: "$" in a pattern also matches just before one.
    for bad in ("a\n", " x\n", "x" * 255 + "\n"):
        assert "control character" in (check_user_id(bad) or ""), repr(bad)


def test_a_tweet_id_with_a_trailing_newline_is_refused():
    from tone.events import check_id

    assert check_id("123") is None
    for bad in ("123\n", "a\n"):
        assert "may hold only" in (check_id(bad, "id") or ""), repr(bad)


@pytest.mark.parametrize("user_id", ["a:recent", "a:h:2026112310", "*", "{x}", "x" * 256, "ünïcødé 🙂", " spaced "])
def test_hostile_but_valid_user_ids_are_events(user_id):
    event = parse_event(raw(user_id=user_id))
    assert isinstance(event, TweetEvent)
    assert event.user_id == user_id


@pytest.mark.parametrize("lang", [3, ["en"], {"code": "en"}, True, "x" * 65])
def test_a_declared_lang_that_cannot_be_a_tag_never_loses_the_tweet(lang):
    """Kept as a value no tag matches: the stream ignores it, counts it and detects the language (tone.language)."""
    event = parse_event(raw(lang=lang))
    assert not isinstance(event, Invalid)
    assert event.lang == schema.INVALID_LANG


def test_a_long_but_valid_language_tag_is_kept():
    assert parse_event(raw(lang="zh-Hant-HK-x-private")).lang == "zh-Hant-HK-x-private"
