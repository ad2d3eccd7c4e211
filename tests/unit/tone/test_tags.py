import json

import pytest

from tone.events import ScoredTweet, parse_event
from tone.tags import MAX_TAG_CHARS, MAX_TAGS, check_tag, declared, from_text, of_tweet


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Loving the #Launch! #launch #ＬＡＵＮＣＨ", ("#launch",)),
        ("a#b &#38; #123 x#y", ()),  # inside a word, an HTML entity, all digits
        ("#1a #नमस्ते #東京 #café", ("#1a", "#नमस्ते", "#東京", "#café")),
        ("$TSLA up, $100 down, US$5, $brk.b", ("$tsla", "$brk.b")),
        ("#launch and $launch", ("#launch", "$launch")),
        ("#" + "a" * (MAX_TAG_CHARS + 1), ()),
        (" ".join(f"#t{i}" for i in range(50)), tuple(f"#t{i}" for i in range(MAX_TAGS))),
    ],
)
def test_tags_of_a_text_follow_xs_rules_normalised_and_bounded(text, want):
    assert from_text(text) == want


def test_declared_tags_come_from_x_entities_and_bluesky_tags_and_facets():
    x = {"entities": {"hashtags": [{"tag": "Launch"}, {"text": "v11"}, {"tag": "two words"}, "junk"],
                      "cashtags": [{"tag": "TSLA"}]}}  # fmt: skip
    assert declared(x) == ("#launch", "#v11", "$tsla")
    facet = {"features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "Bar"}, {"$type": "other", "tag": "no"}]}
    assert declared({"tags": ["Foo", 7], "facets": [facet, "junk"]}) == ("#foo", "#bar")
    assert declared({"entities": {}}) == ()  # the source looked: none, even if the text has one
    assert declared({}) is None
    assert of_tweet(None, "see #this") == ("#this",) and of_tweet((), "see #this") == ()


def test_any_tags_payload_is_read_or_ignored_never_a_reason_to_lose_the_tweet():
    base = {"id": "1", "user_id": "u", "text": "hi #there", "created_at": "2026-11-23T10:00:00Z"}
    for junk in (None, 5, "x", [1, None, {}], {"hashtags": 5}, {"hashtags": [{"tag": None}]}):
        event = parse_event(json.dumps({**base, "entities": junk, "tags": junk, "facets": junk}))
        assert event.__class__.__name__ == "TweetEvent"


def test_the_scored_topic_carries_the_tags_and_reads_them_back():
    from datetime import UTC, datetime

    out = ScoredTweet("1", "u", datetime(2026, 1, 1, tzinfo=UTC), "positive", {"positive": 1.0}, 1.0, "v",
                      tags=("#a", "$b\"c"))  # fmt: skip
    assert out.to_json() == json.dumps(out.to_dict()).encode()
    assert ScoredTweet.from_json(out.to_json()).tags == ("#a", '$b"c')


def test_a_tag_typed_by_a_user_is_normalised_or_refused_with_the_rule():
    assert check_tag("$TSLA") == "$tsla" and check_tag("Launch") == "#launch" and check_tag("#東京") == "#東京"
    with pytest.raises(ValueError, match="not a tag"):
        check_tag("#123")
