"""parse_event is total: property-based (hypothesis) and coverage-guided (atheris) checks."""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import REPO_ROOT
from tone.aggregates.deltas import Scored, batch_deltas, hour_bucket
from tone.aggregates.store import key_part
from tone.events import REASONS, Invalid, ScoredTweet, TweetEvent, parse_event


def downstream_safe(event: TweetEvent) -> None:
    """What the stream does with an event must not raise."""
    created = event.created_at.timestamp()
    hour_bucket(created)
    key_part(event.user_id)
    ScoredTweet(event.id, event.user_id, event.created_at, "neutral", {"neutral": 1.0}, 0.0, "v").to_json()
    (delta,) = batch_deltas([Scored(event.user_id, event.id, created, "neutral", {"neutral": 1.0}, 0.0)], 3600, 5)
    json.dumps(delta.to_wire(), allow_nan=False)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512))
def test_any_bytes_give_an_event_or_a_reason(data):
    result = parse_event(data)
    assert isinstance(result, Invalid | TweetEvent)
    if isinstance(result, Invalid):
        assert result.reason in REASONS


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**301),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=300),
)
offsets = st.integers(min_value=-1439, max_value=1439).map(lambda m: timezone(timedelta(minutes=m)))
timestamps = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=offsets).map(  # noqa: DTZ001 - hypothesis bounds are naive
        lambda d: d.isoformat()
    ),
    st.text(max_size=40),
    scalars,
)


@settings(max_examples=600, deadline=None)
@given(
    st.fixed_dictionaries(
        {"id": st.one_of(scalars, st.text(max_size=80)), "user_id": st.one_of(scalars, st.text(max_size=300))},
        optional={
            "text": st.one_of(scalars, st.text(min_size=1, max_size=500)),
            "created_at": timestamps,
            "lang": scalars,
            "nested": st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=20),
        },
    )
)
def test_any_json_object_gives_an_event_or_a_reason_and_events_are_safe_downstream(obj):
    result = parse_event(json.dumps(obj, allow_nan=True).encode())
    if isinstance(result, Invalid):
        assert result.reason in REASONS
        return
    assert result.created_at.utcoffset() is not None  # aware: naive times are refused
    assert 1 <= result.created_at.astimezone(UTC).year <= 9999  # a time that exists in UTC
    downstream_safe(result)


def test_coverage_guided_fuzz_of_the_parser_finds_nothing():
    """A bounded atheris run (libFuzzer under the hood) over parse_event and what follows it."""
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "fuzz" / "fuzz_events.py"), "-runs=40000", "-max_len=2048"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Done 40000 runs" in out.stderr


finite = st.floats(allow_nan=False, allow_infinity=False)


@given(
    text=st.text(max_size=40),
    labels=st.lists(st.text(max_size=12), min_size=1, max_size=4, unique=True),
    number=st.one_of(finite, st.sampled_from([float("nan"), float("inf"), -float("inf"), -0.0, 1e-300, 1e300])),
    seconds=st.integers(min_value=-(2**31), max_value=2**33),
    offset=st.integers(min_value=-23 * 60, max_value=23 * 60),
)
def test_scored_tweet_json_is_the_bytes_json_dumps_gives(text, labels, number, seconds, offset):
    created = datetime.fromtimestamp(seconds, timezone(timedelta(minutes=offset)))
    probs = {label: number if i == 0 else 1.0 / (i + 3) for i, label in enumerate(labels)}
    tweet = ScoredTweet(text, text[::-1], created, labels[0], probs, number, text + "\u2028")
    assert tweet.to_json() == json.dumps(tweet.to_dict()).encode()
    back = ScoredTweet.from_json(tweet.to_json())
    assert (back.id, back.user_id, back.created_at, back.probs.keys()) == (text, text[::-1], created, probs.keys())


@given(
    st.one_of(
        st.integers(min_value=-(2**33) * 10**6, max_value=2**34 * 10**6),
        # a microsecond either side of an hour's edge
        st.integers(min_value=-(2**20), max_value=2**20).flatmap(
            lambda h: st.sampled_from([h * 3600 * 10**6 + d for d in (-1, 0, 1)])
        ),
    )
)
def test_hour_buckets_are_the_utc_hour_of_the_event(microseconds):
    # event times come from datetimes: whole microseconds
    seconds = microseconds / 10**6
    assert hour_bucket(seconds) == datetime.fromtimestamp(seconds, UTC).strftime("%Y%m%d%H")


@given(
    prob=st.one_of(
        finite.map(np.float64), st.integers(-(10**20), 10**20), st.booleans(), st.floats(width=32).map(float)
    ),
    polarity=st.one_of(finite, finite.map(np.float64), st.integers(-5, 5)),
)
def test_scored_tweet_json_of_numbers_that_are_not_plain_floats_is_json_dumps(prob, polarity):
    created = datetime(2026, 12, 1, tzinfo=UTC)
    tweet = ScoredTweet("1", "u", created, "positive", {"positive": prob, "neutral": 0.25}, polarity, "v")
    assert tweet.to_json() == json.dumps(tweet.to_dict()).encode()
    json.loads(tweet.to_json())


@given(
    model=st.text(max_size=20),
    label=st.text(max_size=12),
    polarity=st.one_of(
        finite, st.sampled_from([float("nan"), float("inf")]), st.integers(-2, 2), finite.map(np.float64)
    ),
    extra=st.booleans(),
)
def test_a_shadowed_scored_tweet_json_is_the_bytes_json_dumps_gives(model, label, polarity, extra):
    shadow = {"model": model, "label": label, "polarity": polarity} | ({"x": 1} if extra else {})
    created = datetime(2026, 12, 1, tzinfo=UTC)
    tweet = ScoredTweet("1", "u", created, "positive", {"positive": 0.5}, 0.5, "v", shadow=shadow)
    assert tweet.to_json() == json.dumps(tweet.to_dict()).encode()
    assert ScoredTweet.from_json(tweet.to_json()).shadow is not None
