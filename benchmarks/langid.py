"""`tone bench langid`: how often the stream's language detector is right on short texts, and how fast it is.

Data (:func:`tone.datasets.load_multilingual`): English from VADER's 4,200 rated tweets and the CrowdFlower tweets
(the sealed rows left out), the other languages from the chatterbot corpus's short conversational lines. Figures:

- per language: the share detected as that language;
- ``other_right``: the same over every non-English line; ``other_as_en``: the share of them detected as English
  (what the default routes would score as tone);
- ``en_right`` per English source: the share of English tweets detected as English (what would be scored);
- the same over the lines as long as a short tweet (``four_words``: 4 words or more, 6 characters or more in
  Japanese, Chinese and Thai);
- tweets/s of :meth:`~tone.langid.LanguageDetector.detect` on one core over all the texts.

Both with the routes' tie rule (English preferred, as the default routes make it) and without.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tone.datasets import load_crowdflower, load_multilingual
from tone.langid import LanguageDetector

if TYPE_CHECKING:
    from tone.settings import Settings


def _accuracy(detect: Callable[[str], str], texts: Sequence[tuple[str, str]]) -> dict[str, Any]:
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    as_en = 0
    misses: dict[str, Counter[str]] = defaultdict(Counter)
    for text, lang in texts:
        found = detect(text)
        total[lang] += 1
        if found == lang:
            right[lang] += 1
        else:
            misses[lang][found] += 1
        as_en += lang != "en" and found == "en"
    others = sum(n for lang, n in total.items() if lang != "en")
    return {
        "by_language": {lang: {"n": n, "right": right[lang] / n} for lang, n in sorted(total.items())},
        "other_right": sum(right[lang] for lang in total if lang != "en") / others if others else None,
        "other_as_en": as_en / others if others else None,
        "worst": min(
            ((lang, right[lang] / n) for lang, n in total.items() if lang != "en" and n >= 40),  # noqa: PLR2004
            key=lambda x: x[1],
            default=None,
        ),
        "en_misses": dict(misses["en"].most_common(6)),
    }


def tweet_length(text: str, lang: str) -> bool:
    """A line as long as a short tweet: 4 words or more (6 characters or more in scripts without spaces)."""
    return len(text) >= 6 if lang in ("ja", "zh", "th") else len(text.split()) >= 4  # noqa: PLR2004


def run_langid_bench(settings: Settings, *, repeat: int = 3, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Accuracy and speed of the configured detector, with and without English preferred; see the docstring."""
    examples = load_multilingual(settings.data_dir)
    texts = [(e.text, e.lang) for e in examples]
    crowdflower = [(e.text, "en") for e in load_crowdflower(settings.data_dir)]
    candidates = settings.lang_candidates_list
    say(f"{len(texts)} lines in {len({lang for _, lang in texts})} languages, {len(crowdflower)} CrowdFlower tweets")
    rows = []
    for name, preferred in (("english preferred (default routes)", ("en",)), ("no preference", ())):
        detector = LanguageDetector(candidates, preferred)
        row: dict[str, Any] = {"name": name, **_accuracy(detector.detect, texts)}
        longer = _accuracy(detector.detect, [(t, lang) for t, lang in texts if tweet_length(t, lang)])
        row["four_words"] = {k: longer[k] for k in ("other_right", "other_as_en", "worst")}
        row["four_words"]["texts"] = sum(1 for t, lang in texts if lang != "en" and tweet_length(t, lang))
        row["en_right"] = {
            "vader_tweets": row["by_language"]["en"]["right"],
            "crowdflower_tweets": _accuracy(detector.detect, crowdflower)["by_language"]["en"]["right"],
        }
        plain = [t for t, _ in texts]
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            detector.detect_many(plain)
            best = min(best, time.perf_counter() - t0)
        row["tweets_per_s"] = len(plain) / best
        rows.append(row)
    return {"texts": len(texts), "candidates": len(candidates), "rows": rows}
