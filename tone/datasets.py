"""Labelled text datasets, one loader per format, and the deterministic split every command shares.

Formats:
- ``vader-tweets``: the 4,200 human-rated tweets from the vaderSentiment 3.3.2 source archive (Hutto & Gilbert,
  ICWSM 2014; MIT licence), fetched with pip by :func:`fetch_vader`. Mean ratings -4..+4 become 3 classes at +-0.5.
- ``vader-reviews``: the same archive's 19,500 rated movie/Amazon/NYT snippets (extra training text, not tweets).
- a TweetEval task directory (``train_text.txt`` + ``train_labels.txt`` + ``mapping.txt``);
- a Sentiment140 CSV (polarity 0/2/4, id, date, query, user, text; latin-1);
- any CSV or JSONL with text and label columns (``id`` optional).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
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

VADER_VERSION: Final = "3.3.2"
VADER_FILES: Final = {
    "tweets": "tweets_GroundTruth.txt",
    "movies": "movieReviewSnippets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
}
BUILTIN: Final = ("vader-tweets", "vader-reviews")
SENTIMENT140_LABELS: Final = {"0": NEGATIVE, "2": NEUTRAL, "4": POSITIVE}


class DatasetError(ToneError):
    """A dataset is missing or not in the expected format; the message says which file and what was expected."""


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled text. ``id`` is unique within its dataset and decides its split."""

    id: str
    text: str
    label: str


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
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"vadersentiment=={VADER_VERSION}",
            "-d",
            tmp,
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        sdists = list(Path(tmp).glob("*.tar.gz"))
        if result.returncode != 0 or not sdists:
            msg = (
                f"could not download the vaderSentiment {VADER_VERSION} source archive with pip "
                f"(exit {result.returncode}): {result.stderr.strip()[-500:]}"
            )
            raise DatasetError(msg)
        _extract_ground_truth(sdists[0], target)
    return target


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
        examples.append(Example(str(row.get("id", i)), str(row[text_column]), str(row[label_column]).lower()))
    return examples


def load_dataset(spec: str | Path, data_dir: Path) -> list[Example]:
    """Load by name (``vader-tweets``, ``vader-reviews``) or by path, picking the loader from the file's shape."""
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
def _rank(example_id: str) -> str:
    return hashlib.sha256(example_id.encode()).hexdigest()


def split_examples(examples: Sequence[Example], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> Split:
    """Deterministic, stratified split: within each label, examples ordered by a hash of their id are cut 80/10/10.

    The same ids always land in the same part, whatever order they were loaded in.
    """
    if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        msg = f"split fractions must be >= 0 and sum to 1, got {fractions}"
        raise ValueError(msg)
    by_label: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_label[ex.label].append(ex)
    train, val, test = [], [], []
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda e: _rank(e.id))
        n_train = round(len(group) * fractions[0])
        n_val = round(len(group) * fractions[1])
        train += group[:n_train]
        val += group[n_train : n_train + n_val]
        test += group[n_train + n_val :]
    return Split(train, val, test)


def label_counts(examples: Iterable[Example]) -> dict[str, int]:
    """Examples per label, sorted by label."""
    counts: dict[str, int] = defaultdict(int)
    for ex in examples:
        counts[ex.label] += 1
    return dict(sorted(counts.items()))
