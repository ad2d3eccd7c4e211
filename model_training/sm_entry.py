"""The training entry point that SageMaker training jobs and the local tuner both run.

SageMaker's script-mode contract: hyperparameters arrive as ``--name value`` arguments; the data channel is a
directory named by ``SM_CHANNEL_TRAIN``; whatever is written to ``SM_MODEL_DIR`` becomes the job's ``model.tar.gz``;
``/opt/ml/checkpoints`` is synced to S3 (managed spot training resumes from it). The metric lines printed per epoch
(``epoch=2 train_loss=0.51 val_macro_f1=0.71 ...``, then ``best_val_macro_f1=...``) are what the tuning spec's regex
reads, on SageMaker from CloudWatch and locally from this process's stdout.

Run it by hand::

    SM_MODEL_DIR=/tmp/m SM_CHANNEL_TRAIN=/path/to/dir python -m model_training.sm_entry --model rnn --epochs 1
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from tone import envvars

SM_CHECKPOINT_DIR = "/opt/ml/checkpoints"
DATA_SUFFIXES = (".jsonl", ".ndjson", ".csv")


def parse_hyperparameters(argv: list[str]) -> dict[str, str]:
    """``--lr 0.001 --hidden_size 64`` (or ``--hidden-size``) -> {"lr": "0.001", "hidden_size": "64"}.

    SageMaker's own ``sagemaker_*`` keys are dropped; a flag without a value is an error.
    """
    values: dict[str, str] = {}
    i = 0
    while i < len(argv):
        flag = argv[i]
        if not flag.startswith("--"):
            msg = f"unexpected argument {flag!r}: hyperparameters come as --name value"
            raise SystemExit(msg)
        name, eq, inline = flag[2:].partition("=")
        if eq:
            value, i = inline, i + 1
        elif i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
        else:
            msg = f"hyperparameter {flag} has no value"
            raise SystemExit(msg)
        name = name.replace("-", "_")
        if not name.startswith("sagemaker_"):
            values[name] = value
    return values


def find_data(channel: Path) -> Path:
    """The one data file in a channel directory (a CSV/JSONL file, or a TweetEval directory)."""
    if channel.is_file():
        return channel
    files = sorted(p for p in channel.iterdir() if p.is_file() and p.suffix in DATA_SUFFIXES)
    if len(files) == 1:
        return files[0]
    if not files and (channel / "train_text.txt").exists():
        return channel
    msg = f"channel {channel} must hold exactly one {'/'.join(DATA_SUFFIXES)} file, found {[p.name for p in files]}"
    raise SystemExit(msg)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train with the given hyperparameters on the channel's data and save the artifact to SM_MODEL_DIR."""
    from model_training.hparams import HParams
    from model_training.workflow import train_and_save
    from tone.settings import load_settings

    hyperparameters = parse_hyperparameters(sys.argv[1:] if argv is None else argv)
    try:
        hp = HParams.from_hyperparameters(hyperparameters)
    except ValueError as exc:
        msg = f"bad hyperparameters: {exc}"
        raise SystemExit(msg) from None
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    channel = Path(os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    checkpoint_env = os.environ.get(envvars.TRAIN_CHECKPOINT_DIR)
    checkpoint_dir = Path(checkpoint_env) if checkpoint_env else None
    if checkpoint_dir is None and Path(SM_CHECKPOINT_DIR).is_dir():
        checkpoint_dir = Path(SM_CHECKPOINT_DIR)
    data = find_data(channel)
    print(f"hyperparameters {json.dumps(hp.to_hyperparameters(), sort_keys=True)}", flush=True)

    def say(line: str) -> None:
        print(line, flush=True)  # line by line: the local tuner prunes on these as they appear

    manifest = train_and_save(
        load_settings(), model=hp.model, out=model_dir, data=str(data), hp=hp, say=say, checkpoint_dir=checkpoint_dir
    )
    output = Path(os.environ.get("SM_OUTPUT_DATA_DIR", model_dir.parent / "output"))
    output.mkdir(parents=True, exist_ok=True)
    (output / "metrics.json").write_text(json.dumps(manifest.get("metrics", {}), indent=2))
    return manifest


if __name__ == "__main__":
    main()
