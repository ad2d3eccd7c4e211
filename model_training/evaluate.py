"""Evaluation artefacts: the confusion-matrix picture (the numbers come from :mod:`model_training.metrics`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def confusion_png(report: dict[str, Any], path: Path, title: str) -> Path:
    """Draw ``report['confusion']`` as a labelled heat map with counts and row-normalised shares."""
    import matplotlib

    matplotlib.use("Agg")  # no display here or in CI
    import matplotlib.pyplot as plt
    import numpy as np

    matrix = np.asarray(report["confusion"], dtype=float)
    labels = report["labels"]
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.8, 4.2), dpi=120)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\nmacro-F1 {report['macro_f1']:.3f}, accuracy {report['accuracy']:.3f}", fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            color = "white" if shares[i, j] > 0.6 else "black"
            ax.text(j, i, f"{int(matrix[i, j])}\n{shares[i, j]:.0%}", ha="center", va="center", color=color, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
