"""The LightningModule that trains any registered model network, as a classifier (class logits,
cross-entropy) or as a regressor (one output, the standardized target, MSE or Huber)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from aiinfra.errors import AiinfraError
from aiinfra.models.model_dir import InferenceModel
from aiinfra.models.schema import Scheduler
from aiinfra.training.process import set_threads
from aiinfra.training.schema import Loss


def make_loss(loss: Loss, class_weights: torch.Tensor | None = None) -> nn.Module:
    """The loss module of a resolved ``trainer.loss`` (never ``auto`` here)."""
    if loss == Loss.cross_entropy:
        return nn.CrossEntropyLoss(weight=class_weights)
    if loss == Loss.mse:
        return nn.MSELoss()
    if loss == Loss.huber:
        return nn.HuberLoss(delta=1.0)  # one standard deviation of the target
    raise ValueError(f"unresolved loss {loss!r}: resolve trainer.loss against the task first")


def balanced_class_weights(y_train: torch.Tensor, n_classes: int) -> torch.Tensor:
    """n / (k x count_c) per class from the TRAIN split's labels; a class train never has gets
    weight 0 (no row of it can be weighed anyway)."""
    counts = torch.bincount(y_train.long(), minlength=n_classes).double()
    weights = torch.where(counts > 0, counts.sum() / (n_classes * counts.clamp_min(1)), torch.zeros_like(counts))
    return weights.float()


class NonFiniteLoss(AiinfraError):
    """The training loss became NaN or infinite: training stops at that batch."""


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
        loss: Loss = Loss.cross_entropy,
        class_weights: torch.Tensor | None = None,
        target_scale: tuple[float, float] | None = None,
        input_names: list[str] | None = None,
    ):
        """``loss``: resolved against the task (:func:`aiinfra.training.schema.resolve_loss`);
        ``cross_entropy`` trains a classifier, ``mse``/``huber`` a regressor whose targets arrive
        standardized with ``target_scale`` (train mean, std), so its validation metrics are
        reported in the target's units. ``input_names``: the encoded columns, for the message of a
        NaN loss."""
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
        self.regression = loss != Loss.cross_entropy
        self.loss_name = Loss(loss)
        self.loss = make_loss(self.loss_name, class_weights)
        self.target_mean, self.target_std = target_scale or (0.0, 1.0)
        self.input_names = list(input_names) if input_names is not None else None
        self._loss_sum: torch.Tensor | None = None
        self._seen = 0
        self._batch_in_epoch = 0  # micro-batch steps: the batch index within the epoch
        if self.regression:
            from torchmetrics import MeanAbsoluteError, MeanSquaredError, R2Score  # Lightning's own dependency

            self.val_metrics = nn.ModuleDict(
                {"val_rmse": MeanSquaredError(squared=False), "val_mae": MeanAbsoluteError(), "val_r2": R2Score()}
            )

    # Lightning sets ``_current_fx_name`` around every hook call (~20 per step) and training_step
    # updates the loss sums; nn.Module.__setattr__ checks each value against parameters, buffers
    # and submodules: 0.22 s of 2.3 s in a cProfile of a 2-epoch fit of the MLP (the profiler
    # inflates Python-heavy calls). Plain attributes skip it.
    _PLAIN_ATTRS = frozenset({"_current_fx_name", "_loss_sum", "_seen", "_batch_in_epoch"})

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
        self._batch_in_epoch = 0
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
        loss = self._loss(self.model(x), y)
        self._check_finite(loss, x, batch_idx)
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
            loss = self._loss(self.model(xb), yb)
            self._check_finite(loss, xb, self._batch_in_epoch + i)
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
        self._batch_in_epoch += len(chunks)

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss(out[:, 0], y) if self.regression else self.loss(out, y)

    def _check_finite(self, loss: torch.Tensor, x: torch.Tensor, batch: int) -> None:
        """Stop at the first NaN or infinite loss, with its place and its likely cause: every
        later step would only spread it (the weights turn NaN and the saved model predicts NaN).
        One 0-d check per step (a device sync on GPU; on CPU ~2 us, far below a step)."""
        if bool(torch.isfinite(loss)):
            return
        raise NonFiniteLoss(
            f"the training loss is {float(loss.detach())} at epoch {self.current_epoch}, batch {batch} "
            f"(trainer.loss={self.loss_name}): {self._likely_cause(x)}. Training stopped.",
            hint=self._hint(x),
        )

    def _bad_inputs(self, x: torch.Tensor) -> list[str]:
        """The encoded columns with NaN/inf in this batch, or in the train split (the standardizer
        fitted on it then holds NaN, and every row turns NaN)."""
        scaler = self.model.scaler
        bad_x = (~torch.isfinite(x)).any(0)
        bad_fit = ~(torch.isfinite(scaler.mean) & torch.isfinite(scaler.std))
        bad = (bad_x | bad_fit.to(bad_x.device)).nonzero().flatten().tolist()
        names = self.input_names or [f"column {i}" for i in range(x.shape[1])]
        return [names[i] if i < len(names) else f"column {i}" for i in bad]

    def _likely_cause(self, x: torch.Tensor) -> str:
        bad = self._bad_inputs(x)
        if bad:
            return f"the inputs hold NaN or infinite values in {', '.join(bad[:5])}"
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            return f"the weights diverged to NaN/inf: the learning rate ({self.lr:g}) is likely too high"
        if self.regression:
            return (
                f"the inputs are finite; likely the learning rate ({self.lr:g}) is too high, or the target "
                f"is extreme (train mean {self.target_mean:g}, std {self.target_std:g})"
            )
        return f"the inputs are finite; likely the learning rate ({self.lr:g}) is too high"

    def _hint(self, x: torch.Tensor) -> str:
        if self._bad_inputs(x):
            return (
                "fill or drop the missing values in the source, or prepare it again "
                "(`aiinfra prepare`): its preprocessing imputes gaps"
            )
        return f"lower model.lr (now {self.lr:g}), or set trainer.gradient_clip_val=1.0"

    def running_train_loss(self) -> float | None:
        """This epoch's mean training loss so far (this rank's): callbacks that report at the end
        of validation run before Lightning publishes the epoch's ``train_loss``."""
        return float(self._loss_sum / self._seen) if self._seen else None

    def on_train_epoch_end(self) -> None:
        if self._seen:
            self.log("train_loss", self._loss_sum / self._seen, sync_dist=True)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self.model(x)
        self.log("val_loss", self._loss(out, y), on_epoch=True, batch_size=len(y), sync_dist=True)
        if not self.regression:
            self.log("val_acc", (out.argmax(1) == y).float().mean(), on_epoch=True, batch_size=len(y), sync_dist=True)
            return
        # in the target's units; torchmetrics objects, because RMSE and R2 are not means of
        # per-batch values: Lightning computes them (synced over ranks) when the epoch's metrics
        # are read, so the progress line, the MLflow epoch metrics and early stopping see this
        # epoch's values (a module's on_validation_epoch_end runs after the callbacks' own)
        pred = out[:, 0].float() * self.target_std + self.target_mean
        actual = y.float() * self.target_std + self.target_mean
        for key, metric in self.val_metrics.items():
            metric.update(pred, actual)
            self.log(key, metric, on_epoch=True, batch_size=len(y))

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
