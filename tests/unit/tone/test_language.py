"""A tweet's language: declared tags, the precedence rule, routes, and the detector on real text (tone/language.py,
tone/langid.py)."""

import pytest

from tone.errors import ConfigError
from tone.langid import LanguageDetector, letters_only
from tone.language import UND, Resolved, Routes, metric_language, normalize_tag, resolve


@pytest.mark.parametrize(
    ("tag", "code"),
    [
        ("en", "en"),
        ("EN-gb", "en"),
        ("en_US", "en"),
        ("pt-BR", "pt"),
        ("zh-Hant", "zh"),
        ("iw", "he"),  # deprecated codes X still writes
        ("in", "id"),
        ("eng", "en"),  # ISO 639-2/3 to 639-1
        ("jpn", "ja"),
        ("fil", "tl"),  # the detector's code for Filipino/Tagalog
        ("nb", "no"),
        ("ckb", "ckb"),  # no 639-1 code: kept as 639-3
        ("und", UND),  # valid tags that name no language
        ("zxx", UND),
        ("qme", UND),  # X: media links only
        ("qht", UND),  # X: hashtags only
        ("xx", None),  # not a tag
        ("english", None),
        ("<invalid>", None),
        ("x-klingon", None),
        ("", None),
        ("e" * 70, None),
    ],
)
def test_declared_tags_normalise_to_iso_639_1(tag, code):
    assert normalize_tag(tag) == code


def test_routes_parse_and_route_with_a_wildcard_and_none():
    routes = Routes.parse("EN=default, es=vader, und=vader, *=none", default="rnn")
    assert routes.spec_for("en") == "rnn"
    assert routes.spec_for("es") == "vader"
    assert routes.spec_for("und") == "vader"
    assert routes.spec_for("ja") is None
    assert routes.specs() == ["rnn", "vader"]
    assert Routes.parse("en=default,*=vader").spec_for("ja") == "vader"
    assert Routes.parse("en=default").spec_for("de") is None  # the default: English only


@pytest.mark.parametrize(
    ("text", "match"),
    [("en", "not LANG=SCORER"), ("klingon=rnn", "not a language code"), ("en=rnn,EN=vader", "has a route")],
)
def test_malformed_routes_say_what_is_wrong(text, match):
    with pytest.raises(ValueError, match=match):
        Routes.parse(text)


def detect_as(code):
    return lambda _text: code


def test_a_declared_language_wins_by_default_even_on_a_text_too_short_to_detect():
    assert resolve("en", "ok", "declared", detect_as("tr")) == Resolved("en", "declared", False)
    assert resolve("en-US", "lol 😂", "declared", detect_as("it")).code == "en"


def test_without_a_declaration_the_language_is_detected():
    assert resolve(None, "Das ist schrecklich", "declared", detect_as("de")) == Resolved("de", "detected", False)


def test_a_declared_value_that_is_not_a_tag_is_ignored_and_flagged():
    assert resolve("<invalid>", "Das ist schrecklich", "declared", detect_as("de")) == Resolved("de", "detected", True)


def test_a_tag_that_names_no_language_declares_nothing():
    assert resolve("und", "Das ist schrecklich", "declared", detect_as("de")) == Resolved("de", "detected", False)


def test_precedence_detected_lets_the_detector_win_unless_it_finds_nothing():
    assert resolve("fr", "this is English", "detected", detect_as("en")) == Resolved("en", "detected", False)
    assert resolve("fr", "😂😂", "detected", detect_as(UND)) == Resolved("fr", "declared", False)


def test_text_without_language_and_without_declaration_is_und():
    assert resolve(None, "😂 https://t.co/x", "declared", detect_as(UND)) == Resolved(UND, "und", False)
    assert resolve(None, "anything", "declared", None) == Resolved(UND, "und", False)  # no detector: declared or und


def test_metric_labels_are_bounded():
    assert metric_language("en") == "en"
    assert metric_language("ckb") == "other"
    assert metric_language(UND) == UND


@pytest.fixture(scope="module")
def detector():
    return LanguageDetector(
        ["en", "de", "fr", "es", "pt", "it", "ja", "zh", "ko", "ru", "uk", "ar", "nl", "sv"], ["en"]
    )


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("I can't believe how good this new album is, listening all day", "en"),
        ("HECK YES BANK ACCOUNT THAT'S WHAT I'M TALKIN' ABOUT!", "en"),  # all caps once read as Persian
        ("Das ist schrecklich, ich hasse es.", "de"),
        ("Je ne sais pas quoi faire ce soir, des idées ?", "fr"),
        ("Hoy es un día increíble para ir a la playa", "es"),
        ("最悪だ、本当に腹が立つ", "ja"),
        ("わたし。", "ja"),  # kana: Japanese, however short
        ("今天天气很好，我们去公园吧", "zh"),
        ("오늘 정말 행복해요", "ko"),
        ("Дякую, це чудово!", "uk"),  # Ukrainian-only letters
        ("Это было ужасно, я очень зол", "ru"),
        ("هذا سيء جدا وأنا حزين", "ar"),
        ("@bob #winning https://t.co/abc 😂😂 123", UND),  # nothing but mentions, tags, links, emoji, digits
    ],
)
def test_the_detector_reads_short_tweets(detector, text, code):
    assert detector.detect(text) == code


def test_the_detector_chooses_among_its_candidates_only():
    only = LanguageDetector(["en", "de"])
    assert only.detect("Hoy es un día increíble para ir a la playa") in ("en", "de")


def test_a_near_tie_goes_to_a_routed_language():
    plain, routed = (
        LanguageDetector(["en", "de", "sv", "da", "no"]),
        LanguageDetector(["en", "de", "sv", "da", "no"], ["en"]),
    )
    texts = ["good grief!", "Damn typos :(", "Thanks Laurie!! xo", "Yep.  Me too."]
    assert sum(plain.detect(t) == "en" for t in texts) < sum(routed.detect(t) == "en" for t in texts)
    assert routed.detect("Das ist schrecklich, ich hasse es.") == "de"  # not a near tie: German stays German


def test_an_unknown_candidate_is_a_config_error():
    with pytest.raises(ConfigError, match="TONE_LANG_CANDIDATES.*tlh"):
        LanguageDetector(["en", "tlh"])


def test_what_the_detector_reads():
    assert letters_only("RT @bob: LOVE it!!! #blessed https://t.co/x &amp; 100% 😂") == "rt love it"
    assert letters_only("मैं ठीक हूँ") == "मैं ठीक हूँ"  # vowel signs (marks) are kept
