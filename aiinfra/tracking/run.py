"""The MLflow run of a training: opened before fit (rank 0 only), resumed after it for the model.

What a training run records: the lineage tags (data version, git commit, dvc.lock), the flat
config params, the resolved config and the data's meta as artifacts, and the model directory as
an MLflow pyfunc model.

Opening it in a background thread while the first epoch trains was measured and rejected
(docs/training.md): importing MLflow holds the GIL, and the Python side of every Lightning step
then waits, so fit slowed by more than the 2-5 s the overlap saved.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.entities import Param
from mlflow.models import infer_signature
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
from mlflow.tracking.context.registry import resolve_tags

import aiinfra
from aiinfra.config.typed import to_dict
from aiinfra.models.model_dir import Predictor
from aiinfra.tracking.mlflow_setup import git_commit, setup_mlflow, tracking_uri

#: set by `aiinfra tune` to the study's run id: each training becomes its child run
PARENT_RUN_ENV = "AIINFRA_PARENT_RUN_ID"

#: the config sections logged as MLflow params (``model.hidden``, ``trainer.max_epochs``...)
PARAM_SECTIONS = ("seed", "source", "model", "trainer", "data", "split")


def lineage_tags(cfg: Any, dataset_hash: str) -> dict[str, str]:
    """Which data, components, commit and pipeline lock a training ran with."""
    tags = {
        "aiinfra.dataset_hash": dataset_hash,
        "aiinfra.source": cfg.source.type,
        "aiinfra.model": cfg.model.type,
        "aiinfra.trainer": f"{cfg.trainer.type}/{cfg.trainer.accelerator}",
    }
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["aiinfra.git_commit"] = commit
    if Path("dvc.lock").is_file():
        tags["aiinfra.dvc_lock_sha256"] = hashlib.sha256(Path("dvc.lock").read_bytes()).hexdigest()[:16]
    return tags


def config_params(cfg: Any) -> dict[str, str]:
    """The config sections of :data:`PARAM_SECTIONS`, flattened to ``section.key`` -> string."""
    out: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}", v)
        else:
            out[prefix] = str(node)[:500]  # MLflow's limit on a param value

    for section in PARAM_SECTIONS:
        walk(section, to_dict(getattr(cfg, section)))
    return out


class TrainRun:
    """Opens the run at once: tags (``mlflow.start_run``'s own plus ``tags``), params, artifacts
    (path -> text, or a dict logged as JSON)."""

    def __init__(self, cfg: Any, *, tags: dict[str, str], params: dict[str, str], artifacts: dict[str, Any]):
        self._monitor: SystemMetricsMonitor | None = None
        exp_id = setup_mlflow(cfg)
        self.uri = tracking_uri(cfg.tracking)
        client = mlflow.MlflowClient()
        # resolve_tags adds what mlflow.start_run would (user, source, git commit)
        tags = resolve_tags(tags)
        parent = os.environ.get(PARENT_RUN_ENV)
        if parent:  # a trial of `aiinfra tune`: shown nested under the study's run
            tags["mlflow.parentRunId"] = parent
        self.run_id = client.create_run(exp_id, run_name=cfg.tracking.run_name, tags=tags).info.run_id
        client.log_batch(self.run_id, params=[Param(k, v) for k, v in params.items()])
        for path, content in artifacts.items():
            if isinstance(content, str):
                client.log_text(self.run_id, content, path)
            else:
                client.log_dict(self.run_id, content, path)
        if cfg.tracking.system_metrics:
            # MLflow samples every 10 s unless MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL says otherwise
            self._monitor = SystemMetricsMonitor(self.run_id, tracking_uri=self.uri)
            self._monitor.start()

    def resume(self):
        """Make the run the active MLflow run of this thread (for log_model and friends)."""
        return mlflow.start_run(run_id=self.run_id)

    def close(self, status: str = "FINISHED") -> None:
        """End the run (``FAILED`` when training raised) and stop the system-metrics sampler."""
        if self._monitor is not None:
            self._monitor.finish()
            self._monitor = None
        active = mlflow.active_run()
        if active is not None and active.info.run_id == self.run_id:
            mlflow.end_run(status=status)
        else:
            mlflow.MlflowClient().set_terminated(self.run_id, status=status)


def log_model_dir(
    model_dir: Path, example: Any, *, artifact_name: str, features: list[str], classes: list[Any], target: str
):
    """Log a model directory to the active run as an MLflow pyfunc (models from code) with a tensor
    signature inferred from ``example`` (a few float32 rows); returns MLflow's ModelInfo."""
    probs = Predictor.load(model_dir).predict_proba(example)
    signature = infer_signature(example.astype(np.float32), probs.astype(np.float32))
    code = Path(__file__).resolve().parent / "pyfunc_model.py"
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(code),
        artifacts={artifact_name: str(model_dir)},
        signature=signature,
        input_example=example,
        # explicit requirements: inferring them would load the model in a subprocess (slow)
        pip_requirements=[
            f"aiinfra=={aiinfra.__version__}",
            f"torch=={torch.__version__.split('+')[0]}",
            f"mlflow=={mlflow.__version__}",
            f"numpy=={np.__version__}",
        ],
        metadata={"features": features, "classes": classes, "target": target},
    )
