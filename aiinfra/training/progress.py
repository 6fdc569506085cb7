"""Progress output: Lightning's bar on a terminal, plain periodic lines in CI logs."""

from __future__ import annotations

import logging
import sys
import time

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

from aiinfra.training.epoch_metrics import epoch_metrics

log = logging.getLogger("aiinfra.train")


def use_bar(setting: bool | None) -> bool:
    return sys.stderr.isatty() if setting is None else bool(setting)


def bar_callback(refresh_rate: int = 25) -> L.Callback:
    """Lightning's tqdm bar, redrawn every ``refresh_rate`` steps: redrawing on every step
    costs as much as a small model's step."""
    return TQDMProgressBar(refresh_rate=refresh_rate)


class PlainProgress(L.Callback):
    """One log line per epoch (and one every ``every_s`` seconds inside long epochs)."""

    def __init__(self, every_s: float = 30.0, check_every: int = 64):
        self.every_s = every_s
        self.check_every = max(1, int(check_every))
        self._t0 = self._last = 0.0

    def on_train_epoch_start(self, trainer, pl_module):
        self._t0 = self._last = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # checking the clock only every 64 batches keeps this off the per-step cost
        if batch_idx % self.check_every:
            return
        now = time.perf_counter()
        if now - self._last >= self.every_s:
            self._last = now
            total = trainer.num_training_batches
            log.info("epoch %d: batch %d/%s", trainer.current_epoch, batch_idx + 1, total)

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        m = epoch_metrics(trainer, pl_module)
        shown = " ".join(f"{k}={v:.4f}" for k, v in sorted(m.items()))
        log.info(
            "epoch %d/%d %s (%.1f s)",
            trainer.current_epoch + 1,
            trainer.max_epochs,
            shown,
            time.perf_counter() - self._t0,
        )
