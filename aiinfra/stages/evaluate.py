"""``aiinfra evaluate``: metrics of the trained model on the held-out split, for DVC and MLflow.

Writes ``metrics.json`` (``dvc metrics show``), the plot CSVs (``dvc plots show``) and logs the
same metrics to the training run in MLflow. Classification: accuracy, F1, log loss, ROC AUC;
``plots/confusion.csv`` and ``plots/roc.csv``. Regression: RMSE, MAE, R2 in the target's units;
``plots/predicted.csv`` (actual vs predicted) and ``plots/residuals.csv``. Every plot file is
written for every task (the other task's files hold only their header): dvc.yaml declares all
four as outputs of the stage, and a declared output must exist.
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


def regression_metrics(y: Any, pred: Any) -> dict[str, float]:
    """RMSE, MAE and R2 in the target's units (R2 0 for a constant target)."""
    import numpy as np

    y, pred = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    err = pred - y
    total = float(((y - y.mean()) ** 2).sum())
    return {
        "rmse": float(np.sqrt((err**2).mean())),
        "mae": float(np.abs(err).mean()),
        "r2": 1.0 - float((err**2).sum()) / total if total > 0 else 0.0,
    }


#: the metrics evaluate writes for a task (each as ``<split>_<name>``, with ``<split>_rows``)
CLASSIFICATION_METRICS = ("accuracy", "f1_macro", "log_loss", "roc_auc")
REGRESSION_METRICS = ("rmse", "mae", "r2")


def task_metrics(task: str, split: str) -> list[str]:
    names = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    return [f"{split}_{n}" for n in (*names, "rows")]


#: rows encoded at a time when a split is read in chunks (the partitioned layout)
CHUNK_ROWS = 65536


def split_chunks(data: Any, split: str):
    """(x, y) of a prepared split: the whole split at once in the flat layout (the in-memory
    engine's), chunk by chunk in the partitioned one (``prepare.engine=stream``/``ray``), so a
    split larger than memory is scored without being loaded; only labels and outputs are kept."""
    if not getattr(data, "partitioned", False):
        yield data.arrays(split)
        return
    from aiinfra.training.data import ParquetStream

    stream = ParquetStream(
        data.path(split),
        data.features,
        data.target,
        data.classes,
        CHUNK_ROWS,
        chunk_rows=CHUNK_ROWS,
        shuffle=False,
        transform=data.transform,
    )
    for x, y in stream:
        yield x.numpy(), y.numpy()


def score_split(predictor: Any, data: Any, split: str) -> tuple[dict[str, float], Any, Any]:
    """(metrics named ``<split>_<metric>``, labels or values, probabilities or predicted values)
    of a model on a prepared split; register uses it too, to score the champion on the same data
    as the challenger."""
    import numpy as np

    ys, outs = [], []
    for x, y in split_chunks(data, split):
        ys.append(y)
        outs.append(predictor.predict_values(x) if predictor.is_regression else predictor.predict_proba(x))
    y, out = np.concatenate(ys), np.concatenate(outs)
    scores = regression_metrics(y, out) if predictor.is_regression else compute_metrics(y, out, len(data.classes))
    metrics = {f"{split}_{k}": v for k, v in scores.items()}
    metrics[f"{split}_rows"] = int(len(y))
    return metrics, y, out


def _write_csv(path: Path, header: list[str], rows: Any = ()) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _classification_plots(plots: Path, classes: list[Any], y: Any, proba: Any) -> None:
    from sklearn.metrics import roc_curve

    pred = proba.argmax(1).tolist()
    _write_csv(
        plots / "confusion.csv",
        ["actual", "predicted"],
        ([classes[a], classes[p]] for a, p in zip(y.tolist(), pred, strict=True)),
    )
    positive = 1 if len(classes) == 2 else int(proba.mean(0).argmax())
    fpr, tpr, thr = roc_curve((y == positive).astype(int), proba[:, positive])
    thresholds = [min(t, 1.0) for t in thr.round(6).tolist()]  # sklearn's first threshold is inf
    _write_csv(
        plots / "roc.csv",
        ["fpr", "tpr", "threshold"],
        zip(fpr.round(6).tolist(), tpr.round(6).tolist(), thresholds, strict=True),
    )


def _regression_plots(plots: Path, y: Any, pred: Any) -> None:
    import numpy as np

    y, pred = np.asarray(y, dtype=np.float64).round(6), np.asarray(pred, dtype=np.float64).round(6)
    _write_csv(plots / "predicted.csv", ["actual", "predicted"], zip(y.tolist(), pred.tolist(), strict=True))
    _write_csv(
        plots / "residuals.csv",
        ["predicted", "residual"],
        zip(pred.tolist(), (y - pred).round(6).tolist(), strict=True),
    )


#: every plot file of evaluate and its header (a task writes its own; the others get the header)
PLOT_FILES = {
    "confusion.csv": ["actual", "predicted"],
    "roc.csv": ["fpr", "tpr", "threshold"],
    "predicted.csv": ["actual", "predicted"],
    "residuals.csv": ["predicted", "residual"],
}


def run(cfg: Any) -> dict[str, Any]:
    from aiinfra.governance.resources import ResourceMeter
    from aiinfra.models.model_dir import Predictor

    meter = ResourceMeter()  # this stage's own usage, recorded beside its metrics (docs/costs.md)
    split = cfg.evaluate.split
    data = PreparedData.open(cfg.paths.prepared)
    predictor = Predictor.load(Path(cfg.paths.models) / "model")
    metrics, y, out = score_split(predictor, data, split)

    plots = Path(cfg.paths.plots)
    plots.mkdir(parents=True, exist_ok=True)
    for name, header in PLOT_FILES.items():
        _write_csv(plots / name, header)
    if predictor.is_regression:
        _regression_plots(plots, y, out)
    else:
        _classification_plots(plots, data.classes, y, out)

    run_file = Path(cfg.paths.models) / "train_run.json"
    train_run = json.loads(run_file.read_text()) if run_file.is_file() else {}
    run_id = train_run.get("run_id")
    client = None
    if run_id:
        import mlflow

        setup_mlflow(cfg)
        client = mlflow.MlflowClient()
    # measured once the store is open: its import and connection are part of what evaluate costs
    resources = _resources(cfg, meter, train_run)
    # the flat metrics stay as they were (the register gate and `dvc metrics` read them by name);
    # the stages' figures are one nested section beside them
    Path(cfg.paths.metrics).write_text(
        json.dumps({**metrics, "resources": resources["summary"]}, indent=2, sort_keys=True) + "\n"
    )
    if client is not None:
        from mlflow.entities import Metric, RunTag

        from aiinfra.governance.costs import cost_tags
        from aiinfra.tracking.mlflow_setup import tracking_uri
        from aiinfra.tracking.store import retry_seconds, store_call

        now = int(time.time() * 1000)
        logged = {**metrics, **resources["metrics"]}
        tags = cost_tags(cfg.costs.rates.currency, cfg.costs.labels)
        store_call(
            tracking_uri(cfg.tracking),
            "logging the test metrics",
            client.log_batch,
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in logged.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
            retry_s=retry_seconds(cfg.tracking),
        )
    log.info("%s", " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(metrics.items())))
    return {"metrics_file": cfg.paths.metrics, "run_id": run_id, **metrics}


def _resources(cfg: Any, meter: Any, train_run: dict[str, Any]) -> dict[str, Any]:
    """This stage's usage and price: the MLflow metrics (``resources.evaluate.*``,
    ``cost.evaluate.*``) and the ``resources`` section of metrics.json, with the training's
    figures from train_run.json beside it."""
    from aiinfra.governance.costs import resource_metrics, summary
    from aiinfra.governance.resources import Usage, price

    usage = meter.usage()
    cost = price(usage, cfg.costs.rates)
    section = {"evaluate": summary(usage, cost)}
    if train_run.get("resources"):
        trained = Usage.from_dict(train_run["resources"])
        section = {"train": summary(trained, train_run.get("cost") or price(trained, cfg.costs.rates)), **section}
    return {"summary": section, "metrics": resource_metrics(usage, cost, stage="evaluate")}
