"""Settings of this training process: torch's threads, and this process's rank among the ranks."""

from __future__ import annotations

import contextlib

import torch
from lightning.pytorch.utilities import rank_zero_only


def set_threads(threads: int) -> None:
    """Pin torch's intra-op threads (0: leave torch's default). One thread per process is the
    measured default (docs/training.md): torch's one-per-core collapses when anything else
    competes for the cores."""
    if threads > 0:
        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # already set once in this process
            torch.set_num_interop_threads(1)


def global_rank() -> int:
    """This process's global rank before the Trainer exists: torchrun sets RANK, SLURM
    SLURM_PROCID; Lightning reads the same variables at import (``rank_zero_only.rank``)."""
    return int(getattr(rank_zero_only, "rank", 0) or 0)
