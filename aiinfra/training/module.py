"""The LightningModule that trains any registered model network as a classifier."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from aiinfra.models.model_dir import InferenceModel
from aiinfra.models.schema import Scheduler
from aiinfra.training.process import set_threads


class ClassifierModule(L.LightningModule):
    def __init__(
        self,
        model: InferenceModel,
        lr: float,
        weight_decay: float = 0.0,
        scheduler: Scheduler | None = None,
        max_epochs: int = 1,
        threads: int = 0,
        seed: int = 0,
        micro_batch: int | None = None,
    ):
        super().__init__()
        # micro_batch: the loader hands several batches at once (trainer.steps_per_call) and
        # training_step takes one optimizer step per micro_batch rows of it. Lightning's per-step
        # machinery then runs once per call instead of once per batch; the batches, their order
        # and the optimizer steps are the same as with one batch per call.
        self.micro_batch = micro_batch
        if self.micro_batch:
            if scheduler is not None:  # the training plan never asks for both
                raise ValueError("micro_batch steps need Lightning's automatic optimization off: no LR scheduler")
            self.automatic_optimization = False
        self.model = model
        self.lr, self.weight_decay, self.scheduler_name, self.max_epochs = lr, weight_decay, scheduler, max_epochs
        self.threads, self.seed = threads, seed
        self.loss = nn.CrossEntropyLoss()
        self._loss_sum: torch.Tensor | None = None
        self._seen = 0

    # Lightning sets ``_current_fx_name`` around every hook call (~20 per step) and training_step
    # updates the loss sums; nn.Module.__setattr__ checks each value against parameters, buffers
    # and submodules: 0.22 s of 2.3 s in a cProfile of a 2-epoch fit of the MLP (the profiler
    # inflates Python-heavy calls). Plain attributes skip it.
    _PLAIN_ATTRS = frozenset({"_current_fx_name", "_loss_sum", "_seen"})

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._PLAIN_ATTRS:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def setup(self, stage: str) -> None:
        # Runs in every process, spawned DDP workers included: they start with torch's default
        # threads (or Lightning's cores/processes), not the parent's setting.
        set_threads(self.threads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def on_train_epoch_start(self) -> None:
        self._loss_sum, self._seen = None, 0
        # Dropout draws from torch's global RNG, which checkpoints do not hold: reseeding per
        # epoch (and rank) makes a run resumed from a checkpoint end exactly where an
        # uninterrupted one does.
        torch.manual_seed(self.seed + 1009 * self.current_epoch + self.global_rank)
        for m in self.model.modules():
            if hasattr(m, "reseed"):  # FastDropout: its masks follow torch's seed too
                m.reseed()

    def training_step(self, batch, batch_idx):
        if self.micro_batch:
            return self._several_steps(batch)
        x, y = batch
        loss = self.loss(self.model(x), y)
        # Sum the loss here and log once per epoch: self.log on every step costs more than a
        # small model's whole step (measured, docs/training.md).
        weighted = loss.detach() * len(y)
        self._loss_sum = weighted if self._loss_sum is None else self._loss_sum + weighted
        self._seen += len(y)
        return loss

    def _several_steps(self, batch) -> None:
        # The last micro-step goes through Lightning (manual_backward, LightningOptimizer.step):
        # its hooks run and global_step advances once per call, which checkpointing relies on.
        # The others call torch directly: in one full-precision process (the only case
        # trainer.steps_per_call is used, see training/plan.py) Lightning adds nothing to them.
        opt = self.optimizers()
        x, y = batch
        chunks = list(zip(x.split(self.micro_batch), y.split(self.micro_batch), strict=True))
        for i, (xb, yb) in enumerate(chunks):
            loss = self.loss(self.model(xb), yb)
            opt.zero_grad(set_to_none=True)
            if i == len(chunks) - 1:
                self.manual_backward(loss)
                opt.step()
            else:
                loss.backward()
                opt.optimizer.step()
            weighted = loss.detach() * len(yb)
            self._loss_sum = weighted if self._loss_sum is None else self._loss_sum + weighted
            self._seen += len(yb)

    def running_train_loss(self) -> float | None:
        """This epoch's mean training loss so far (this rank's): callbacks that report at the end
        of validation run before Lightning publishes the epoch's ``train_loss``."""
        return float(self._loss_sum / self._seen) if self._seen else None

    def on_train_epoch_end(self) -> None:
        if self._seen:
            self.log("train_loss", self._loss_sum / self._seen, sync_dist=True)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        self.log("val_loss", self.loss(logits, y), on_epoch=True, batch_size=len(y), sync_dist=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), on_epoch=True, batch_size=len(y), sync_dist=True)

    def configure_optimizers(self) -> Any:
        # fused: one kernel for all parameters instead of a dozen small ops per tensor; on CPU the
        # optimizer step of the MLP went from 0.19 to 0.05 ms (about a tenth of a training step)
        device = next(self.parameters()).device.type
        opt = torch.optim.AdamW(
            self.parameters(), lr=self.lr, weight_decay=self.weight_decay, fused=device in ("cpu", "cuda")
        )
        name = self.scheduler_name
        if name is None:
            return opt
        if name == Scheduler.cosine:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.max_epochs))
        elif name == Scheduler.step:
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, self.max_epochs // 3), gamma=0.3)
        elif name == Scheduler.plateau:
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=2)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}
        else:  # a plugin model's schema that does not use the Scheduler enum
            raise ValueError(f"unknown model.scheduler {name!r}: one of {', '.join(Scheduler)} or null")
        return {"optimizer": opt, "lr_scheduler": sched}
