"""Log epoch metrics to MLflow and to the DVC training-curve plot, from rank 0 only."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L


class EpochMetrics(L.Callback):
    def __init__(self, run_id: str | None, tracking_uri: str | None, curve_csv: Path):
        self.run_id, self.tracking_uri, self.curve_csv = run_id, tracking_uri, curve_csv
        self.rows: list[dict[str, float]] = []

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        if not metrics:
            return
        epoch = trainer.current_epoch
        self.rows.append({"epoch": epoch, **metrics})
        if self.run_id:
            import time

            from mlflow import MlflowClient
            from mlflow.entities import Metric

            ts = int(time.time() * 1000)
            MlflowClient(self.tracking_uri).log_batch(
                self.run_id, metrics=[Metric(k, v, ts, epoch) for k, v in metrics.items()], synchronous=True
            )

    def on_train_end(self, trainer, pl_module):
        if not trainer.is_global_zero or not self.rows:
            return
        keys = ["epoch", *sorted({k for r in self.rows for k in r if k != "epoch"})]
        self.curve_csv.parent.mkdir(parents=True, exist_ok=True)
        with self.curve_csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.rows)
