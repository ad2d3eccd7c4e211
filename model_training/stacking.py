"""Fit the RNN's VADER stack (tone.scoring.stack) on the validation split, after training.

The validation split is the data the network never trained on, so its outputs there are as confident (or not) as
in use; fitted on training rows, the stack would learn to trust an overfitted network. A mixed split counts each
source equally (copies of an oversampled source share its weight): the stack should serve both kinds of tweets, and
VADER's sentence scores help on some sources and not on others (docs/models.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812 - torch's convention

from model_training.metrics import classification_report
from tone.datasets import Example, dataset_sources, oversampling
from tone.scoring.rnn import RNNScorer
from tone.scoring.stack import Stack, VaderFeatures, feature_names, stack_inputs

L2: float = 1.0  # ridge penalty on the weights (not the biases), as scikit-learn's LogisticRegression with C=1


def source_weights(examples: Sequence[Example], data: str) -> np.ndarray:
    """Row weights under which every source of ``data`` sums to the same total (all 1 for one source)."""
    names = [oversampling(s)[0] for s in dataset_sources(data)] if "," in data else []
    if not names:
        return np.ones(len(examples))
    # load_dataset prefixes a mixed spec's ids with the spec's part ("vader-tweets*3:...")
    source = [oversampling(e.id.split(":", 1)[0])[0] for e in examples]
    counts = {name: source.count(name) for name in set(source)}
    total = len(examples) / len(counts)
    return np.array([total / counts[s] for s in source])


def fit_stack(inputs: np.ndarray, targets: np.ndarray, weights: np.ndarray, labels: Sequence[str]) -> Stack:
    """Weighted multinomial logistic regression (L-BFGS, float64) over :func:`stack_inputs` rows."""
    x = torch.as_tensor(inputs, dtype=torch.float64)
    y = torch.as_tensor(targets, dtype=torch.long)
    w = torch.as_tensor(weights, dtype=torch.float64)
    weight = torch.zeros((len(labels), x.shape[1]), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(len(labels), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=1000, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        nll = F.cross_entropy(x @ weight.T + bias, y, reduction="none")
        loss = (w * nll).sum() + 0.5 * L2 * (weight * weight).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    opt.step(closure)  # type: ignore[no-untyped-call]
    return Stack(tuple(labels), weight.detach().numpy().copy(), bias.detach().numpy().copy())


def add_vader_stack(
    scorer: RNNScorer, val: Sequence[Example], data: str, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Fit the stack on ``val`` and put it on ``scorer``; returns what stack.json records about the fit."""
    labels = list(scorer.labels)
    texts = [e.text for e in val]
    targets = np.array([labels.index(e.label) for e in val])
    weights = source_weights(val, data)
    probs = scorer.model_proba(texts)
    inputs = stack_inputs(probs, VaderFeatures()(texts))
    scorer.stack = stack = fit_stack(inputs, targets, weights, labels)
    gold = [e.label for e in val]
    before = classification_report(gold, [labels[i] for i in probs.argmax(1)], labels)["macro_f1"]
    after = classification_report(gold, [labels[i] for i in stack.proba(inputs).argmax(1)], labels)["macro_f1"]
    # in-sample on val (the stack was fitted there): a sanity line, not a score; the test split is the score
    say(
        f"vader stack: fitted on {len(val)} val rows ({len(feature_names(labels))} inputs); val macro-F1 "
        f"{before:.4f} -> {after:.4f} (in-sample)"
    )
    return {"fitted_on": "val split, each source weighted equally", "val_rows": len(val), "l2": L2}
