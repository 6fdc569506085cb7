"""The metrics of each training epoch: to MLflow and to the DVC training-curve plot, from rank 0 only."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import lightning as L


def epoch_metrics(trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
    """The scalar metrics of the epoch that is ending, with this epoch's training loss."""
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    running = getattr(pl_module, "running_train_loss", None)
    if callable(running) and running() is not None:
        metrics["train_loss"] = running()
    return metrics


class EpochMetrics(L.Callback):
    """``run_id`` None (ranks other than 0) logs nothing to MLflow. The run id and URI are plain
    strings so that ddp_spawn can pickle this callback into its workers."""

    def __init__(self, run_id: str | None, tracking_uri: str | None, curve_csv: Path, *, retry_s: float = 0.0):
        self.run_id, self.tracking_uri, self.curve_csv = run_id, tracking_uri, curve_csv
        self.retry_s = retry_s  # how long a locked store is retried (aiinfra.tracking.store)
        self.rows: list[dict[str, float]] = []
        self._sent = 0  # rows already logged to MLflow

    def _flush(self) -> None:
        if not self.run_id or self._sent == len(self.rows):
            return
        # imported here: ranks other than 0 (ddp_spawn workers unpickle this callback) never log,
        # and importing MLflow takes seconds
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        batch = [
            Metric(k, v, ts, int(row["epoch"]))
            for row in self.rows[self._sent :]
            for k, v in row.items()
            if k != "epoch"
        ]
        from aiinfra.tracking.store import store_call

        client = MlflowClient(self.tracking_uri)
        store_call(
            self.tracking_uri,
            "logging epoch metrics",
            client.log_batch,
            self.run_id,
            metrics=batch,
            synchronous=True,
            retry_s=self.retry_s,
        )
        self._sent = len(self.rows)

    # Saved in every checkpoint, so that a resumed training's curve (training_curve.csv and the
    # new MLflow run) starts at epoch 0, not at the epoch it resumed from.
    def state_dict(self) -> dict:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rows = [dict(r) for r in state_dict.get("rows", [])]
        self._sent = 0  # a resume opens a new MLflow run: it gets the earlier epochs too

    def on_validation_epoch_end(self, trainer, pl_module):
        # only the validation of a training epoch (not sanity checks, not trainer.validate())
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.state.fn != "fit":
            return
        metrics = epoch_metrics(trainer, pl_module)
        if not metrics:
            return
        self.rows.append({"epoch": trainer.current_epoch, **metrics})
        self._flush()

    def on_train_end(self, trainer, pl_module):
        if not trainer.is_global_zero or not self.rows:
            return
        self._flush()
        keys = ["epoch", *sorted({k for r in self.rows for k in r if k != "epoch"})]
        self.curve_csv.parent.mkdir(parents=True, exist_ok=True)
        with self.curve_csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.rows)
