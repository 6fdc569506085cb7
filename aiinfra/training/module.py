"""The LightningModule that trains any registered model network as a classifier."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from aiinfra.models.artifact import InferenceModel


class ClassifierModule(L.LightningModule):
    def __init__(self, model: InferenceModel, lr: float, weight_decay: float = 0.0,
                 scheduler: str | None = None, max_epochs: int = 1):
        super().__init__()
        self.model = model
        self.lr, self.weight_decay, self.scheduler_name, self.max_epochs = lr, weight_decay, scheduler, max_epochs
        self.loss = nn.CrossEntropyLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self.model(x), y)
        # epoch-level only: per-step logging costs more than a small model's step
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        self.log("val_loss", self.loss(logits, y), on_epoch=True, batch_size=len(y), sync_dist=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), on_epoch=True, batch_size=len(y),
                 sync_dist=True)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        name = self.scheduler_name
        if not name:
            return opt
        if name == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.max_epochs))
        elif name == "step":
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, self.max_epochs // 3), gamma=0.3)
        elif name == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=2)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}
        else:
            from aiinfra.errors import ConfigError

            raise ConfigError(f"unknown model.scheduler '{name}'", hint="use null, cosine, step or plateau")
        return {"optimizer": opt, "lr_scheduler": sched}
