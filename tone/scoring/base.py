"""The scorer interface shared by training, streaming and benchmarks."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from tone.labels import polarity


@dataclass(frozen=True, slots=True)
class ToneResult:
    """One scored text: the top label, every class probability, and p(positive) - p(negative)."""

    label: str
    probs: dict[str, float]
    polarity: float


class Scorer(abc.ABC):
    """Texts in, an (n, len(labels)) array of probabilities out, rows in input order."""

    kind: str
    labels: tuple[str, ...]
    version: str
    # ISO 639-1 codes of the languages the model reads (its training data's); None: unknown (a plain Hugging Face
    # model), which routes accept with a warning. Routes never send a model a language it does not list.
    languages: tuple[str, ...] | None = None

    @abc.abstractmethod
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities for each text, in input order."""

    def score(self, texts: Sequence[str]) -> list[ToneResult]:
        """Scored texts with labels and polarity."""
        probs = self.predict_proba(texts)
        pol = polarity(probs, self.labels)
        top = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=int)
        return [
            ToneResult(self.labels[int(k)], dict(zip(self.labels, map(float, row), strict=True)), float(p))
            for k, row, p in zip(top, probs, pol, strict=True)
        ]

    def predict(self, texts: Sequence[str]) -> list[str]:
        """Top label of each text."""
        probs = self.predict_proba(texts)
        return [self.labels[int(k)] for k in probs.argmax(axis=1)] if len(probs) else []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(version={self.version!r}, labels={self.labels})"


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    """Indices grouped into batches of similar length (longest first), so dynamic padding wastes little.

    Callers write each batch's results back at these indices, which keeps the input order.
    """
    if batch_size < 1:
        msg = f"batch_size must be >= 1, got {batch_size}"
        raise ValueError(msg)
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def token_budget_batches(lengths: Sequence[int], max_tokens: int, max_rows: int) -> Iterator[np.ndarray]:
    """Indices in batches of similar length (longest first), each within ``max_tokens`` padded tokens.

    A batch is padded to its longest row, so its cost is rows x longest: bounding that product, rather than the
    row count, gives long texts small batches and short ones large batches (text-embeddings-inference batches the
    same way). ``max_rows`` caps a batch of very short texts; a text longer than the budget goes alone. Callers
    write each batch's results back at these indices, which keeps the input order.
    """
    if max_tokens < 1 or max_rows < 1:
        msg = f"max_tokens and max_rows must be >= 1, got {max_tokens} and {max_rows}"
        raise ValueError(msg)
    sizes = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-sizes, kind="stable")
    start = 0
    while start < len(order):
        longest = max(int(sizes[order[start]]), 1)
        rows = max(1, min(max_rows, max_tokens // longest))
        yield order[start : start + rows]
        start += rows


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Token id rows right-padded to the longest (dynamic padding): int64 ids and the 0/1 attention mask."""
    width = max((len(r) for r in rows), default=0) or 1
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask
