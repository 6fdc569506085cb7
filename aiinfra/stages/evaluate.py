"""``aiinfra evaluate``: metrics of the trained model on the held-out split, for DVC and MLflow.

Writes ``metrics.json`` (``dvc metrics show``), ``plots/confusion.csv`` and ``plots/roc.csv``
(``dvc plots show``), and logs the same metrics to the training run in MLflow.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import time
from pathlib import Path
from typing import Any

from aiinfra.data.prepared import PreparedData
from aiinfra.tracking.mlflow_setup import setup_mlflow

# numpy, scikit-learn, torch (the model) and MLflow are imported where used: the runner imports
# this module before it validates the config, and register imports score_split from here
log = logging.getLogger(__name__)


def compute_metrics(y: Any, proba: Any, n_classes: int) -> dict[str, float]:
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    pred = proba.argmax(1)
    out = {
        "accuracy": float(accuracy_score(y, pred)),
        "f1_macro": float(f1_score(y, pred, average="macro")),
        "log_loss": float(log_loss(y, np.clip(proba, 1e-7, 1), labels=list(range(n_classes)))),
    }
    with contextlib.suppress(ValueError):  # a class absent from a tiny split: no ROC AUC
        out["roc_auc"] = float(
            roc_auc_score(y, proba[:, 1])
            if n_classes == 2
            else roc_auc_score(y, proba, multi_class="ovr", labels=list(range(n_classes)))
        )
    return out


def score_split(predictor: Any, data: Any, split: str) -> tuple[dict[str, float], Any, Any]:
    """(metrics named ``<split>_<metric>``, labels, probabilities) of a model on a prepared split;
    register uses it too, to score the champion on the same data as the challenger."""
    x, y = data.arrays(split)
    proba = predictor.predict_proba(x)
    metrics = {f"{split}_{k}": v for k, v in compute_metrics(y, proba, len(data.classes)).items()}
    metrics[f"{split}_rows"] = int(len(y))
    return metrics, y, proba


def run(cfg: Any) -> dict[str, Any]:
    from sklearn.metrics import roc_curve

    from aiinfra.models.model_dir import Predictor

    split = cfg.evaluate.split
    data = PreparedData.open(cfg.paths.prepared)
    predictor = Predictor.load(Path(cfg.paths.models) / "model")
    metrics, y, proba = score_split(predictor, data, split)
    Path(cfg.paths.metrics).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")

    plots = Path(cfg.paths.plots)
    plots.mkdir(parents=True, exist_ok=True)
    classes = data.classes
    with (plots / "confusion.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["actual", "predicted"])
        for a, p in zip(y.tolist(), proba.argmax(1).tolist(), strict=True):
            w.writerow([classes[a], classes[p]])
    positive = 1 if len(classes) == 2 else int(proba.mean(0).argmax())
    fpr, tpr, thr = roc_curve((y == positive).astype(int), proba[:, positive])
    with (plots / "roc.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["fpr", "tpr", "threshold"])
        thresholds = [min(t, 1.0) for t in thr.round(6).tolist()]  # sklearn's first threshold is inf
        w.writerows(zip(fpr.round(6).tolist(), tpr.round(6).tolist(), thresholds, strict=True))

    run_file = Path(cfg.paths.models) / "train_run.json"
    if run_file.is_file():
        import mlflow
        from mlflow.entities import Metric

        from aiinfra.tracking.mlflow_setup import tracking_uri
        from aiinfra.tracking.store import retry_seconds, store_call

        setup_mlflow(cfg)
        run_id = json.loads(run_file.read_text())["run_id"]
        now = int(time.time() * 1000)
        store_call(
            tracking_uri(cfg.tracking),
            "logging the test metrics",
            mlflow.MlflowClient().log_batch,
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            retry_s=retry_seconds(cfg.tracking),
        )
    log.info("%s", " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(metrics.items())))
    return {"metrics_file": cfg.paths.metrics, **metrics}
