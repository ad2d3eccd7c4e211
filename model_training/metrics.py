"""Classification metrics computed from a confusion matrix (no extra dependency)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Counts[i, j]: true label i predicted as j (pairs with a label outside ``labels`` are left out)."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        if t in index and p in index:
            matrix[index[t], index[p]] += 1
    return matrix


def classification_report(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, macro-recall (TweetEval's sentiment metric), per-class P/R/F1/support, confusion."""
    matrix = confusion(y_true, y_pred, labels)
    tp = np.diag(matrix).astype(float)
    predicted = matrix.sum(axis=0).astype(float)
    # from y_true, not the matrix: a prediction outside ``labels`` still counts against its true class's recall
    support = np.array([sum(t == label for t in y_true) for label in labels], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    n = len(y_true)
    correct = sum(t == p for t, p in zip(y_true, y_pred, strict=True))
    return {
        "n": n,
        "accuracy": correct / n if n else 0.0,
        "macro_f1": float(f1.mean()),
        "macro_recall": float(recall.mean()),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "labels": list(labels),
        "confusion": matrix.tolist(),
    }
