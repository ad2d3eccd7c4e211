"""Training loops for the RNN and transformer scorers, with early stopping on validation macro-F1.

Every epoch prints a metric line such as ``epoch=2 train_loss=0.5123 val_macro_f1=0.8123 val_accuracy=0.8310``
on stdout; SageMaker's metric regexes and the local tuner parse these lines.

Optional distillation: extra unlabelled texts get a teacher's probabilities (a transformer, or VADER) as soft
targets, weighted by ``distill_weight`` against the labelled loss.
"""

from __future__ import annotations

import copy
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model_training.hparams import HParams
from model_training.metrics import classification_report
from tone.datasets import Example, label_counts
from tone.labels import TONE_LABELS
from tone.scoring.base import Scorer


@dataclass
class TrainResult:
    """What a training run produced."""

    scorer: Scorer
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - global seed is the point
    torch.manual_seed(seed)


def metric_line(values: dict[str, float | int]) -> str:
    """``k=v`` pairs as printed for metric regexes (floats with 4 decimals)."""
    return " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def _batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar-length examples (less padding, same randomness across batches)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup: float) -> torch.optim.lr_scheduler.LambdaLR:
    warm = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _targets(examples: Sequence[Example], labels: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    if unknown := sorted({e.label for e in examples} - set(index)):
        msg = f"training data holds labels {unknown} outside the label map {list(labels)}"
        raise ValueError(msg)
    targets = np.zeros((len(examples), len(labels)), dtype=np.float32)
    targets[np.arange(len(examples)), [index[e.label] for e in examples]] = 1.0
    return targets


CHECKPOINT_FILE = "training-state.pt"


def _rng_state(saved: list[Any]) -> tuple[Any, ...]:
    version, internal, gauss = saved
    return (version, tuple(internal), gauss)


def _load_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    rng: random.Random,
) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng.setstate(_rng_state(state["rng"]))
    torch.set_rng_state(state["torch_rng"])
    return state


def _save_checkpoint(
    path: Path,
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    history: list[dict[str, float]],
    best_state: dict[str, Any],
    best_f1: float,
    best_epoch: int,
    stale: int,
    rng: random.Random,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    version, internal, gauss = rng.getstate()
    state = {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": history,
        "best_state": best_state,
        "best_f1": best_f1,
        "best_epoch": best_epoch,
        "stale": stale,
        "rng": [version, list(internal), gauss],
        "torch_rng": torch.get_rng_state(),  # dropout masks: a resumed run continues the same random stream
    }
    torch.save(state, tmp)
    tmp.replace(path)  # a spot interruption mid-write leaves the previous checkpoint intact


def _optimizer(model: nn.Module, hp: HParams) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only (not biases, norms or embeddings)."""
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and (p.ndim <= 1 or "embedding" in n)]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=hp.lr_
    )


def _step(
    model: nn.Module,
    forward: Callable[[list[int]], torch.Tensor],
    batch: list[int],
    target_t: torch.Tensor,
    weight_t: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
) -> float:
    """One optimisation step on ``batch``; returns its weighted loss."""
    logits = forward(batch)
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    per_row = -(target_t[batch].to(logits.device) * log_probs).sum(-1)
    w = weight_t[batch].to(logits.device)
    loss = (per_row * w).sum() / w.sum().clamp(min=1e-6)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    return float(loss.detach())


def fit(
    *,
    model: nn.Module,
    forward: Callable[[list[int]], torch.Tensor],
    lengths: Sequence[int],
    targets: np.ndarray,
    weights: np.ndarray,
    make_scorer: Callable[[], Scorer],
    val: Sequence[Example],
    hp: HParams,
    log: Callable[[str], None],
    checkpoint_dir: Path | None = None,
) -> tuple[list[dict[str, float]], int]:
    """The shared loop: soft-target cross-entropy, AdamW, warm-up + linear decay, early stopping.

    ``forward(indices)`` returns logits for those training rows; ``weights`` scales each row's loss (1 for labelled
    examples, ``distill_weight`` for teacher-labelled ones). Restores the best epoch's weights before returning.

    With ``checkpoint_dir`` (SageMaker's /opt/ml/checkpoints, synced to S3 for managed spot training) the loop saves
    its whole state after every epoch and, when a checkpoint is already there, resumes after its epoch: a spot
    interruption costs at most one epoch.
    """
    rng = random.Random(hp.seed)
    target_t = torch.from_numpy(targets)
    weight_t = torch.from_numpy(weights)
    optimizer = _optimizer(model, hp)
    steps_per_epoch = -(-len(lengths) // hp.batch_size_)
    scheduler = _schedule(optimizer, steps_per_epoch * hp.epochs_, hp.warmup_)
    val_texts, val_labels = [e.text for e in val], [e.label for e in val]

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    history: list[dict[str, float]] = []
    best_f1, best_epoch, best_state, stale = -1.0, 0, copy.deepcopy(model.state_dict()), 0
    first_epoch = 1
    ckpt = checkpoint_dir / CHECKPOINT_FILE if checkpoint_dir else None
    if ckpt is not None and ckpt.is_file():
        state = _load_checkpoint(ckpt, model, optimizer, scheduler, rng)
        history, best_state = state["history"], state["best_state"]
        best_f1, best_epoch, stale = state["best_f1"], state["best_epoch"], state["stale"]
        first_epoch = state["epoch"] + 1
        log(f"resumed from checkpoint {ckpt} after epoch {state['epoch']}")
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeRemainingColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
    )
    with progress:
        for epoch in range(first_epoch, hp.epochs_ + 1):
            if hp.patience and stale >= hp.patience:
                break  # resumed a run that had already stopped early
            model.train()
            t0, total, seen = time.monotonic(), 0.0, 0
            task = progress.add_task(f"epoch {epoch}/{hp.epochs_}", total=steps_per_epoch)
            for batch in _batches(lengths, hp.batch_size_, rng):
                loss = _step(model, forward, batch, target_t, weight_t, optimizer, scheduler)
                total += loss * len(batch)
                seen += len(batch)
                progress.advance(task)
            progress.remove_task(task)
            model.eval()
            scorer = make_scorer()
            report = classification_report(val_labels, scorer.predict(val_texts), scorer.labels)
            row = {
                "epoch": epoch,
                "train_loss": total / max(seen, 1),
                "val_macro_f1": report["macro_f1"],
                "val_accuracy": report["accuracy"],
                "epoch_seconds": time.monotonic() - t0,
            }
            history.append(row)
            log(metric_line(row))
            if report["macro_f1"] > best_f1:
                best_f1, best_epoch, stale = report["macro_f1"], epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
            if ckpt is not None:
                _save_checkpoint(
                    ckpt, epoch, model, optimizer, scheduler, history, best_state, best_f1, best_epoch, stale, rng
                )
            if hp.patience and stale >= hp.patience:
                log(f"early stop: no better val_macro_f1 for {stale} epochs")
                break
    model.load_state_dict(best_state)
    model.eval()
    log(metric_line({"best_epoch": best_epoch, "best_val_macro_f1": best_f1}))
    return history, best_epoch


def sample_weights(examples: Sequence[Example], hp: HParams) -> np.ndarray:
    """Each labelled row's weight in the loss: class balance and labeller confidence, as ``hp`` asks; mean 1."""
    weights = np.ones(len(examples), dtype=np.float32)
    if not examples:
        return weights
    if hp.class_weight > 0:
        counts = label_counts(examples)
        inverse = {label: len(examples) / (len(counts) * n) for label, n in counts.items()}
        weights *= np.array([inverse[e.label] ** hp.class_weight for e in examples], dtype=np.float32)
    if hp.confidence_weight > 0:
        weights *= np.array([max(e.weight, 0.0) ** hp.confidence_weight for e in examples], dtype=np.float32)
    return weights / max(float(weights.mean()), 1e-6)


def _with_teacher(
    train: Sequence[Example],
    labels: Sequence[str],
    teacher: Scorer | None,
    unlabeled: Sequence[str],
    hp: HParams,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Texts, soft targets and row weights: the labelled rows, plus the teacher's view when there is a teacher.

    Extra texts get the teacher's probabilities as their targets, weighted ``distill_weight``. When the texts the
    teacher labels are the training texts themselves (``--unlabeled train``), each row's target blends the two
    instead: ``(1 - distill_weight) * hard label + distill_weight * teacher`` (one pass over the data, not two).
    """
    weight = hp.distill_weight
    texts = [e.text for e in train]
    targets = _targets(train, labels)
    weights = sample_weights(train, hp)
    if teacher is not None and unlabeled:
        if tuple(teacher.labels) != tuple(labels):
            msg = f"teacher labels {teacher.labels} differ from the student's {tuple(labels)}"
            raise ValueError(msg)
        soft = teacher.predict_proba(list(unlabeled)).astype(np.float32)
        if list(unlabeled) == texts:
            targets = (1.0 - weight) * targets + weight * soft
        else:
            texts += list(unlabeled)
            targets = np.concatenate([targets, soft])
            weights = np.concatenate([weights, np.full(len(unlabeled), weight, dtype=np.float32)])
    return texts, targets, weights


def _teacher_note(train: Sequence[Example], texts: Sequence[str], teacher: Scorer | None) -> str:
    """What the teacher adds, for the training log line."""
    if teacher is None:
        return ""
    extra = len(texts) - len(train)
    return f" + {extra} teacher-labelled texts" if extra else ", each target blended with the teacher's"


def train_rnn(
    train: Sequence[Example],
    val: Sequence[Example],
    hp: HParams,
    *,
    labels: Sequence[str] = TONE_LABELS,
    teacher: Scorer | None = None,
    unlabeled: Sequence[str] = (),
    embeddings: torch.Tensor | None = None,
    tokenizer_path: Path | None = None,
    log: Callable[[str], None] = print,
    checkpoint_dir: Path | None = None,
) -> TrainResult:
    """Train the bidirectional GRU; embeddings and tokenizer default to the packaged MiniLM's."""
    from tone.scoring.rnn import BiGRUClassifier, RNNScorer, encode, load_tokenizer, minilm_embeddings

    seed_everything(hp.seed)
    if embeddings is None or tokenizer_path is None:
        embeddings, tokenizer_path = minilm_embeddings()
    tokenizer = load_tokenizer(tokenizer_path, hp.max_length)
    pad_id = tokenizer.token_to_id("[PAD]") or 0
    features = None
    if hp.lexicon:
        from model_training.lexicon import add_lexicon

        embeddings, features = add_lexicon(tokenizer, embeddings)
    model = BiGRUClassifier(
        embeddings.shape[0],
        embeddings.shape[1],
        hp.hidden_size,
        len(labels),
        hp.dropout_,
        pad_id,
        lexicon_dim=0 if features is None else features.shape[1],
    )
    model.init_embeddings(embeddings)
    if features is not None:
        model.init_lexicon(features)

    texts, targets, weights = _with_teacher(train, labels, teacher, unlabeled, hp)
    ids = encode(tokenizer, texts)

    from tone.scoring.torch_utils import pad_batch

    def forward(batch: list[int]) -> torch.Tensor:
        tokens, lengths = pad_batch([ids[i] for i in batch], pad_id)
        return model(tokens, lengths)  # type: ignore[no-any-return]

    def make_scorer() -> RNNScorer:
        return RNNScorer(model, tokenizer, labels, device="cpu", max_length=hp.max_length)

    log(f"training rnn on {len(train)} labelled {label_counts(train)}{_teacher_note(train, texts, teacher)}")
    history, best = fit(
        model=model,
        forward=forward,
        lengths=[len(s) for s in ids],
        targets=targets,
        weights=weights,
        make_scorer=make_scorer,
        val=val,
        hp=hp,
        log=log,
        checkpoint_dir=checkpoint_dir,
    )
    return TrainResult(make_scorer(), history, best)


def train_transformer(
    train: Sequence[Example],
    val: Sequence[Example],
    hp: HParams,
    *,
    base_model: str | Path | None = None,
    labels: Sequence[str] = TONE_LABELS,
    teacher: Scorer | None = None,
    unlabeled: Sequence[str] = (),
    log: Callable[[str], None] = print,
    checkpoint_dir: Path | None = None,
) -> TrainResult:
    """Fine-tune a Hugging Face encoder (default: the packaged MiniLM) with a fresh classification head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tone.scoring.rnn import minilm_dir
    from tone.scoring.transformer import TransformerScorer
    from tone.text import normalize_tweet

    seed_everything(hp.seed)
    base = str(base_model or minilm_dir())
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={k: i for i, k in enumerate(labels)},
        hidden_dropout_prob=hp.dropout_,
        attention_probs_dropout_prob=hp.dropout_,
    )
    texts, targets, weights = _with_teacher(train, labels, teacher, unlabeled, hp)
    ids: list[list[int]] = tokenizer([normalize_tweet(t) for t in texts], truncation=True, max_length=hp.max_length)[
        "input_ids"
    ]

    def forward(batch: list[int]) -> torch.Tensor:
        enc = tokenizer.pad({"input_ids": [ids[i] for i in batch]}, return_tensors="pt")
        return model(**enc).logits  # type: ignore[no-any-return]

    def make_scorer() -> TransformerScorer:
        return TransformerScorer(model, tokenizer, "training", labels=labels, device="cpu", max_length=hp.max_length)

    log(f"fine-tuning {base} on {len(train)} labelled texts{_teacher_note(train, texts, teacher)}")
    history, best = fit(
        model=model,
        forward=forward,
        lengths=[len(s) for s in ids],
        targets=targets,
        weights=weights,
        make_scorer=make_scorer,
        val=val,
        hp=hp,
        log=log,
        checkpoint_dir=checkpoint_dir,
    )
    return TrainResult(make_scorer(), history, best)
