"""A tweet's language: declared tags normalised, the rule that picks declared or detected, and routes to scorers.

Every tweet has a language (see docs/languages.md):

- **declared** by its source: X's ``lang`` (BCP 47, detected by X), the first of Bluesky's ``langs`` (set by the
  author's client). :func:`normalize_tag` turns a tag into a lowercase ISO 639-1 code (``pt-BR`` -> ``pt``,
  ``iw`` -> ``he``, ``eng`` -> ``en``; ISO 639-3 where a language has no 639-1 code). A value that is not a
  language tag is ignored (and counted), never a reason to lose the tweet; a tag that names no language (X's
  ``und``, ``zxx``, ``qme``...) counts as no declaration;
- else **detected** in the worker (:mod:`tone.langid`);
- else ``und``: a text with nothing to detect (emoji, links, mentions, numbers only).

``TONE_LANG_PRECEDENCE`` says what wins when a tweet has both: ``declared`` (the default) or ``detected``.

Routes (``TONE_ROUTES``) map languages to scorer specs: ``en=default,es=/models/xlmt,und=vader``. ``default`` is the
scorer ``TONE_SCORER`` (or ``tone stream --scorer``) names, ``*`` any language without a route of its own, ``none``
not scored. A tweet no route covers is counted (by language) but not scored.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

UND: Final = "und"  # no language (ISO 639-2's "undetermined"), as X writes it
WILDCARD: Final = "*"
NOT_SCORED: Final = "none"
DEFAULT_SCORER: Final = "default"  # in a route: the scorer TONE_SCORER / --scorer names
DEFAULT_ROUTES: Final = "en=default"

# Where a tweet's language came from (the scored tweet's ``lang_source``).
DECLARED: Final = "declared"
DETECTED: Final = "detected"
LangSource = Literal["declared", "detected", "und"]
Precedence = Literal["declared", "detected"]

# Why a counted tweet was not scored (the scored tweet's ``unscored``).
NO_ROUTE: Final = "no_route"

# Tags that are valid BCP 47 but name no language: undetermined, no linguistic content, multiple, uncoded, the
# collective "artificial languages".
_NO_LANGUAGE: Final = frozenset({"und", "zxx", "mul", "mis", "art"})
# Codes that name the same language as the detector's label: a declaration must meet the same code.
_SAME_AS: Final = {"fil": "tl", "nb": "no", "nn": "no"}
MAX_TAG_CHARS: Final = 64
_CODE: Final = re.compile("[a-z]{2,3}")
_LOCAL_USE: Final = re.compile("q[a-t][a-z]")  # ISO 639's qaa-qtz: reserved for local use (X's qme, qht...)

# The languages the detector chooses among by default: the most used on X and Bluesky (a shorter list is more
# accurate, see docs/languages.md); TONE_LANG_CANDIDATES changes it.
DEFAULT_CANDIDATES: Final = (
    "en es pt ja ar ko th fr tr id ru de it tl hi fa ur nl pl zh sv uk he bn el ca ms vi ta mr ro cs hu da fi no"
).split()
# Metrics label tweets by language with these and ``other``, so a feed cannot grow the label set.
METRIC_LANGUAGES: Final = frozenset(DEFAULT_CANDIDATES) | {UND}
OTHER: Final = "other"


@functools.lru_cache(maxsize=4096)
def normalize_tag(raw: str) -> str | None:
    """The language code of a declared tag, ``und`` for a tag that names no language, None for no tag at all.

    The code is ISO 639-1 (lowercase) where one exists, else ISO 639-3. Cached: a feed carries few distinct tags.
    """
    import langcodes

    tag = raw.strip().replace("_", "-")
    if not tag or len(tag) > MAX_TAG_CHARS or not langcodes.tag_is_valid(tag):
        return None
    language = langcodes.Language.get(tag).language  # deprecated codes folded in (iw -> he, in -> id)
    if language is None or language in _NO_LANGUAGE or _LOCAL_USE.fullmatch(language):
        return UND
    if not _CODE.fullmatch(language):  # private use (x-klingon)
        return None
    return _SAME_AS.get(language, language)


@dataclass(frozen=True)
class Routes:
    """Languages -> scorer specs, as parsed from ``TONE_ROUTES`` (see the module docstring)."""

    table: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str, default: str | None = None) -> Routes:
        """Parse ``lang=spec,...``; ``default``, when given, replaces the spec ``default``. ValueError if malformed."""
        table: dict[str, str] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            lang, sep, spec = (x.strip() for x in part.partition("="))
            if not sep or not lang or not spec:
                msg = f"route {part!r} is not LANG=SCORER"
                raise ValueError(msg)
            code = lang if lang == WILDCARD else normalize_tag(lang)
            if code is None:
                msg = f"route {part!r}: {lang!r} is not a language code (an ISO 639-1 code such as en, {UND} or *)"
                raise ValueError(msg)
            if code in table:
                msg = f"route {part!r}: {code} has a route already"
                raise ValueError(msg)
            table[code] = default if spec == DEFAULT_SCORER and default is not None else spec
        return cls(tuple(table.items()))

    def spec_for(self, lang: str) -> str | None:
        """The scorer spec for a tweet in ``lang``, or None when it is not scored."""
        specs = dict(self.table)
        spec = specs.get(lang, specs.get(WILDCARD))
        return None if spec is None or spec == NOT_SCORED else spec

    def specs(self) -> list[str]:
        """The distinct scorer specs the routes use, in route order."""
        return list(dict.fromkeys(s for _, s in self.table if s != NOT_SCORED))

    def languages_of(self, spec: str) -> list[str]:
        """The languages routed to ``spec`` (``*`` included)."""
        return [lang for lang, s in self.table if s == spec]

    def mapping(self) -> Mapping[str, str]:
        """The table as a dict."""
        return dict(self.table)

    def __str__(self) -> str:
        return ",".join(f"{lang}={spec}" for lang, spec in self.table)


def metric_language(code: str) -> str:
    """The bounded label a language gets in metrics (the common ones as they are, the rest ``other``)."""
    return code if code in METRIC_LANGUAGES else OTHER


@dataclass(frozen=True, slots=True)
class Resolved:
    """A tweet's language, where it came from, and whether its declared value was ignored as not a tag."""

    code: str
    source: str  # LangSource
    ignored: bool = False


def resolve(declared: str | None, text: str, precedence: Precedence, detect: Callable[[str], str] | None) -> Resolved:
    """The language of one tweet (see the module docstring); ``detect`` None: no detection (declared or ``und``)."""
    code = normalize_tag(declared) if declared is not None else None
    ignored = declared is not None and code is None
    if code == UND:
        code = None  # a tag that names no language declares nothing
    if code is not None and (precedence == DECLARED or detect is None):
        return Resolved(code, DECLARED, ignored)
    found = detect(text) if detect is not None else UND
    if found != UND:
        return Resolved(found, DETECTED, ignored)
    if code is not None:  # nothing to detect in the text: the declaration stands
        return Resolved(code, DECLARED, ignored)
    return Resolved(UND, UND, ignored)
