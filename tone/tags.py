r"""A tweet's tags: hashtags (``#launch``) and cashtags (``$tsla``), the one definition the stream counts by.

Where they come from, first that applies:
- **declared** by the source: X's ``entities.hashtags`` / ``entities.cashtags`` (v2 ``tag``, v1.1 ``text``),
  Bluesky's ``tags`` and its facets' ``app.bsky.richtext.facet#tag`` features;
- **parsed** from the text with X's rules (twitter-text): ``#`` or ``＃`` after the start, a space or a punctuation
  mark (never inside a word, a URL fragment or ``&#38;``), then Unicode letters, marks, digits and underscores, not
  all digits; ``$`` then 1-6 letters (optionally ``.`` or ``_`` and 1-2 more), not inside a word.

A tag is normalised as X and Bluesky compare them: NFKC, then case-folded (``#Launch``, ``#ＬＡＵＮＣＨ`` and
``#launch`` are one tag), kept with its sign (a hashtag and a cashtag of the same word are two tags). Hostile input
is bounded: at most MAX_TAGS distinct tags per tweet (the first ones), each at most MAX_TAG_CHARS; a declared value
that is not a tag is ignored, never a reason to lose the tweet. Mentions are not tags here (docs/conversation.md).

The `regex` module (already pinned through the tokenizers) gives the Unicode classes (``\p{L}``, ``\p{M}``) that
``re`` lacks; Python's ``\w`` leaves out the combining marks of Hindi or Thai hashtags.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any, Final

import regex

MAX_TAGS: Final = 10  # per tweet: a spam tweet of 500 hashtags counts in 10 tags, not 500
MAX_TAG_CHARS: Final = 100  # X's own limit on a hashtag's length (after the sign)
STREAM: Final = "*"  # the whole stream's entity (no tag can be "*": a tag starts with # or $)

# twitter-text: a hashtag starts after the start of the text or a character that is not a letter, digit, "&" or
# "_" (so "a#b" and "&#38;" hold none); its body is letters, marks, digits, underscores (and the two joiners some
# scripts need), and must hold a letter or mark.
_HASHTAG: Final = regex.compile(
    r"(?<![\p{L}\p{M}\p{Nd}_&/])[#＃](?![\ufe0f\u20e3])"
    r"([\p{L}\p{M}\p{Nd}_\u200c\u200d\ua67e\u05be\u05f3\u05f4\u309b\u309c\u30a0\u30fb\u3003\u0f0b\u0f0c\u00b7]+)"
)
_CASHTAG: Final = regex.compile(
    r"(?<![\p{L}\p{M}\p{Nd}_$])\$([a-z]{1,6}(?:[._][a-z]{1,2})?)(?![\p{L}\p{M}\p{Nd}_])", regex.IGNORECASE
)
_FACET_TAG: Final = "app.bsky.richtext.facet#tag"
_HAS_LETTER: Final = regex.compile(r"[\p{L}\p{M}]")


def normalize(sign: str, body: str) -> str | None:
    """``sign`` (``#`` or ``$``) and the tag's text as one tag id, or None when it is not a tag."""
    text = unicodedata.normalize("NFKC", body).casefold().lstrip("#＃$")
    if not text or len(text) > MAX_TAG_CHARS or not _HAS_LETTER.search(text):
        return None
    if regex.search(r"[^\p{L}\p{M}\p{Nd}_\u200c\u200d.]", text):
        return None  # a declared value with spaces, signs or control characters: not one tag
    return sign + text


def from_text(text: str) -> tuple[str, ...]:
    """The hashtags and cashtags of a tweet's text (X's rules; see the module docstring), in order, distinct."""
    found: list[str] = []
    if "#" in text or "＃" in text:
        found += [t for m in _HASHTAG.finditer(text) if (t := normalize("#", m.group(1)))]
    if "$" in text:
        found += [t for m in _CASHTAG.finditer(text) if (t := normalize("$", m.group(1)))]
    return _bounded(found)


def _bounded(tags: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(tags))[:MAX_TAGS]


def _texts(items: Any, *names: str) -> list[str]:
    """The strings under ``names`` of a list of objects (X's entities), ignoring anything of another shape."""
    if not isinstance(items, list):
        return []
    out = []
    for item in items[: MAX_TAGS * 4]:
        if isinstance(item, dict):
            out += [v for name in names if isinstance(v := item.get(name), str)][:1]
    return out


def declared(obj: dict[str, Any]) -> tuple[str, ...] | None:
    """The tags a payload declares (X entities, Bluesky tags and facets); None when it declares none at all.

    An ``entities`` object with no hashtags is a declaration (the source looked: the tweet has none), as is an
    empty ``tags`` list next to facets.
    """
    tags: list[str] = []
    said = False
    entities = obj.get("entities")
    if isinstance(entities, dict):
        said = True
        tags += [t for v in _texts(entities.get("hashtags"), "tag", "text") if (t := normalize("#", v))]
        tags += [t for v in _texts(entities.get("cashtags"), "tag", "text") if (t := normalize("$", v))]
    bsky = obj.get("tags")
    if isinstance(bsky, list):
        said = True
        # Bluesky's tags have no sign; this project's own events keep a cashtag's "$" (TweetEvent.to_dict).
        signed = [("$" if v[:1] == "$" else "#", v) for v in bsky[: MAX_TAGS * 4] if isinstance(v, str)]
        tags += [t for sign, v in signed if (t := normalize(sign, v))]
    facets = obj.get("facets")
    if isinstance(facets, list):
        said = True
        for facet in facets[: MAX_TAGS * 4]:
            features = facet.get("features") if isinstance(facet, dict) else None
            for f in features if isinstance(features, list) else []:
                if isinstance(f, dict) and f.get("$type") == _FACET_TAG and isinstance(f.get("tag"), str):
                    tags += [t] if (t := normalize("#", f["tag"])) else []
    return _bounded(tags) if said else None


def of_tweet(declared_tags: tuple[str, ...] | None, text: str) -> tuple[str, ...]:
    """A tweet's tags: the declared ones when its source declared them, else those of its text."""
    return declared_tags if declared_tags is not None else from_text(text)


def check_tag(value: str) -> str:
    """A tag as a user types it (``#Launch``, ``$TSLA``, ``launch``: a hashtag) normalised; ValueError if none."""
    text = value.strip()
    sign = "$" if text.startswith("$") else "#"
    tag = normalize(sign, text[1:] if text[:1] in "#＃$" else text)
    if tag is None:
        msg = (
            f"{value!r} is not a tag: a hashtag (#launch: letters, digits, _; not all digits) or a cashtag ($tsla: "
            f"1-6 letters), at most {MAX_TAG_CHARS} characters"
        )
        raise ValueError(msg)
    return tag
