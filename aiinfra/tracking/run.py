"""The MLflow run of a training: opened before fit (rank 0 only), resumed after it for the model.

Opening it in a background thread while the first epoch trains was measured and rejected
(docs/training.md): importing MLflow holds the GIL, and the Python side of every Lightning step
then waits, so fit slowed by more than the 2-5 s the overlap saved.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

log = logging.getLogger(__name__)

#: set by `aiinfra tune` to the study's run id: each training becomes its child run
PARENT_RUN_ENV = "AIINFRA_PARENT_RUN_ID"


class TrainRun:
    def __init__(self, cfg: Any, tags: Callable[[], dict[str, str]], params: Callable[[], dict[str, str]],
                 artifacts: Callable[[], dict[str, Any]]):
        self.cfg, self._tags, self._params, self._artifacts = cfg, tags, params, artifacts
        self._monitor = None
        self.uri: str | None = None
        self.run_id = self._open()

    def _open(self) -> str:
        import mlflow
        from mlflow.entities import Param
        from mlflow.tracking.context.registry import resolve_tags

        from aiinfra.tracking.mlflow_setup import setup_mlflow, tracking_uri

        exp_id = setup_mlflow(self.cfg)
        self.uri = tracking_uri(self.cfg.tracking)
        client = mlflow.MlflowClient()
        # resolve_tags adds what mlflow.start_run would (user, source, git commit)
        tags = resolve_tags(self._tags())
        parent = os.environ.get(PARENT_RUN_ENV)
        if parent:  # a trial of `aiinfra tune`: shown nested under the study's run
            tags["mlflow.parentRunId"] = parent
        run = client.create_run(exp_id, run_name=self.cfg.tracking.get("run_name"), tags=tags)
        run_id = run.info.run_id
        client.log_batch(run_id, params=[Param(k, v) for k, v in self._params().items()])
        for path, content in self._artifacts().items():
            if isinstance(content, str):
                client.log_text(run_id, content, path)
            else:
                client.log_dict(run_id, content, path)
        if bool(self.cfg.tracking.system_metrics):
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            # MLflow samples every 10 s unless MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL says otherwise
            self._monitor = SystemMetricsMonitor(run_id, tracking_uri=self.uri)
            self._monitor.start()
        return run_id

    def resume(self):
        """Make the run the active MLflow run of this thread (for log_model and friends)."""
        import mlflow

        return mlflow.start_run(run_id=self.run_id)

    def close(self, status: str = "FINISHED") -> None:
        """End the run (``FAILED`` when training raised) and stop the system-metrics sampler."""
        import mlflow

        run_id = self.run_id
        if self._monitor is not None:
            self._monitor.finish()
            self._monitor = None
        active = mlflow.active_run()
        if active is not None and active.info.run_id == run_id:
            mlflow.end_run(status=status)
        else:
            mlflow.MlflowClient().set_terminated(run_id, status=status)
