"""Device choice, threads and batched inference shared by the torch scorers (imports torch: heavy path only)."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from tone.errors import ConfigError
from tone.scoring.kinds import DEVICES


def pick_device(device: str = "auto") -> torch.device:
    """cuda, then mps, then cpu for ``auto``; an explicit choice that is not available is an error."""
    if device not in DEVICES:
        msg = f"device {device!r} is not one of {', '.join(DEVICES)}"
        raise ConfigError(msg)
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        msg = "device 'cuda' was asked for but torch sees no CUDA GPU; use 'auto' or 'cpu'"
        raise ConfigError(msg)
    if device == "mps" and not torch.backends.mps.is_available():
        msg = "device 'mps' was asked for but is not available; use 'auto' or 'cpu'"
        raise ConfigError(msg)
    return torch.device(device)


def set_threads(threads: int) -> None:
    """Intra-op threads for CPU inference; 0 leaves torch's default (one per core)."""
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on GPUs that support it (fp16 otherwise); nothing on CPU, where it is slower."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def pad_batch(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists to the longest in the batch (dynamic padding); returns ids and lengths."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    ids = np.full((len(sequences), max(int(lengths.max()), 1)), pad_id, dtype=np.int64)
    for i, seq in enumerate(sequences):
        ids[i, : len(seq)] = seq
    return torch.from_numpy(ids), torch.from_numpy(lengths)
