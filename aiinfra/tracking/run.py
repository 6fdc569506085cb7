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
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.entities import Param
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
from mlflow.tracking.context.registry import resolve_tags

import aiinfra
from aiinfra.config.typed import to_dict
from aiinfra.models.model_dir import Predictor
from aiinfra.storage import urls
from aiinfra.tracking.mlflow_setup import git_commit, setup_mlflow, tracking_uri

log = logging.getLogger(__name__)

#: set by `aiinfra tune` to the study's run id: each training becomes its child run
PARENT_RUN_ENV = "AIINFRA_PARENT_RUN_ID"

#: the config sections logged as MLflow params (``model.hidden``, ``trainer.max_epochs``...)
PARAM_SECTIONS = ("seed", "source", "model", "trainer", "data", "split")


def lineage_tags(cfg: Any, dataset_hash: str, source: dict[str, Any] | None = None) -> dict[str, str]:
    """Which data, components, commit and pipeline lock a training ran with. ``source``: the
    source config the prepared data was made from (:meth:`PreparedData.source`), else the config's."""
    tags = {
        "aiinfra.dataset_hash": dataset_hash,
        "aiinfra.source": str((source or {}).get("type") or cfg.source.type),
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


def config_params(cfg: Any, source: dict[str, Any] | None = None) -> dict[str, str]:
    """The config sections of :data:`PARAM_SECTIONS`, flattened to ``section.key`` -> string;
    ``source`` (the prepared data's source config) stands for the config's ``source`` section."""
    out: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}", v)
        else:
            # a URL without its credentials (a presigned source.path); 500: MLflow's limit
            out[prefix] = str(urls.redact(node) if isinstance(node, str) else node)[:500]

    for section in PARAM_SECTIONS:
        walk(section, source if section == "source" and source is not None else to_dict(getattr(cfg, section)))
    return out


def _process_token(pid: int | None = None) -> str:
    """``pid:start-time`` of a process (Linux ``/proc``; ``pid:`` elsewhere): a pid reused by a
    later process does not match its token."""
    pid = os.getpid() if pid is None else pid
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        start = stat.rsplit(")", 1)[1].split()[19]  # field 22, after the command name
    except (OSError, IndexError):
        start = ""
    return f"{pid}:{start}"


def _process_alive(token: str) -> bool:
    pid_text, _, start = token.partition(":")
    try:
        pid = int(pid_text)
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError, OSError):
        return True  # not ours to judge: leave the run alone
    return not start or _process_token(pid) == token


#: tags that say which process owns a RUNNING training run (for reap_orphans)
HOST_TAG, PROCESS_TAG, ENDED_TAG = "aiinfra.host", "aiinfra.process", "aiinfra.ended"


def status_for(exc: BaseException) -> str:
    """The MLflow status of a run that ended with ``exc``: KILLED for a signal or Ctrl-C, else FAILED."""
    # an error may name its own status: a budget stop (aiinfra.errors.BudgetExceeded) is KILLED
    own = getattr(exc, "mlflow_status", None)
    if own:
        return str(own)
    return "KILLED" if isinstance(exc, KeyboardInterrupt | SystemExit) else "FAILED"


class TrainRun:
    """Opens the run at once: tags (``mlflow.start_run``'s own plus ``tags``), params, artifacts
    (path -> text, or a dict logged as JSON).

    Every call into the store goes through :func:`aiinfra.tracking.store.store_call` (a locked
    store is retried for ``tracking.retry_s``). The run never stays RUNNING: a failure while
    opening it ends it as FAILED; ``close(status)`` ends it; and a run whose process died without
    closing it (SIGKILL, a power cut, a store that stayed locked to the end) is marked FAILED by
    the next training on the same host (:meth:`reap_orphans`, by the owner tags it carries).
    """

    def __init__(self, cfg: Any, *, tags: dict[str, str], params: dict[str, str], artifacts: dict[str, Any]):
        from aiinfra.tracking.store import retry_seconds

        self._monitor: SystemMetricsMonitor | None = None
        self.run_id: str | None = None
        exp_id = setup_mlflow(cfg)
        self.uri = tracking_uri(cfg.tracking)
        self.retry_s = retry_seconds(cfg.tracking)
        client = mlflow.MlflowClient()
        self.reap_orphans(client, exp_id)
        # resolve_tags adds what mlflow.start_run would (user, source, git commit)
        tags = {**resolve_tags(tags), HOST_TAG: socket.gethostname(), PROCESS_TAG: _process_token()}
        parent = os.environ.get(PARENT_RUN_ENV)
        if parent:  # a trial of `aiinfra tune`: shown nested under the study's run
            tags["mlflow.parentRunId"] = parent
        self.run_id = self.call(
            "opening the training run", client.create_run, exp_id, run_name=cfg.tracking.run_name, tags=tags
        ).info.run_id
        try:
            param_list = [Param(k, v) for k, v in params.items()]
            self.call("logging the config params", client.log_batch, self.run_id, params=param_list)
            for path, content in artifacts.items():
                log_fn = client.log_text if isinstance(content, str) else client.log_dict
                self.call(f"logging {path}", log_fn, self.run_id, content, path)
            if cfg.tracking.system_metrics:
                # MLflow samples every 10 s unless MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL says otherwise
                self._monitor = SystemMetricsMonitor(self.run_id, tracking_uri=self.uri)
                self._monitor.start()
        except BaseException as exc:
            self.close(status_for(exc), quiet=True)
            raise

    def call(self, what: str, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` against this run's store, retried while it is locked."""
        from aiinfra.tracking.store import store_call

        return store_call(self.uri, what, fn, *args, retry_s=self.retry_s, **kwargs)

    def reap_orphans(self, client, exp_id: str) -> list[str]:
        """Mark FAILED the RUNNING runs of this experiment that a process on this host opened and
        that process is gone; returns their ids."""
        host = socket.gethostname().replace("'", "")
        runs = self.call(
            "looking for abandoned runs",
            client.search_runs,
            [exp_id],
            filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
            max_results=200,
        )
        reaped = []
        for run in runs:
            token = run.data.tags.get(PROCESS_TAG)
            if not token or _process_alive(token):
                continue
            self.call("ending an abandoned run", client.set_tag, run.info.run_id, ENDED_TAG, "process gone")
            self.call("ending an abandoned run", client.set_terminated, run.info.run_id, status="FAILED")
            log.warning(
                "MLflow run %s was left RUNNING by process %s, which is gone: marked FAILED",
                run.info.run_id,
                token.split(":")[0],
            )
            reaped.append(run.info.run_id)
        return reaped

    def resume(self):
        """Make the run the active MLflow run of this thread (for log_model and friends)."""
        return self.call("resuming the training run", mlflow.start_run, run_id=self.run_id)

    def log_metrics(self, metrics: dict[str, float], tags: dict[str, str] | None = None) -> None:
        """Metrics (and tags) in one store call."""
        from mlflow.entities import RunTag

        run_tags = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        client = mlflow.MlflowClient()
        self.call("logging metrics", client.log_batch, self.run_id, metrics=_metrics(metrics), tags=run_tags)

    def close(self, status: str = "FINISHED", *, quiet: bool = False) -> None:
        """End the run (``FAILED`` when training raised, ``KILLED`` on a signal) and stop the
        system-metrics sampler. ``quiet``: on the way out of a failure, a store that cannot take
        the status is a warning (the original error is the one to report)."""
        if self._monitor is not None:
            self._monitor.finish()
            self._monitor = None
        if self.run_id is None:
            return
        try:
            active = mlflow.active_run()
            if active is not None and active.info.run_id == self.run_id:
                self.call(f"ending the run as {status}", mlflow.end_run, status=status)
            else:
                self.call(
                    f"ending the run as {status}", mlflow.MlflowClient().set_terminated, self.run_id, status=status
                )
        except Exception as exc:
            if not quiet:
                raise
            log.warning(
                "could not mark MLflow run %s %s (%s); the next `aiinfra train` on this host will",
                self.run_id,
                status,
                str(exc).splitlines()[0],
            )


def _metrics(values: dict[str, float]):
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, 0) for k, v in values.items()]


#: MLflow column types of the contract's feature types (numeric: see :func:`_column_type`)
_MLFLOW_TYPES = {"categorical": "string", "text": "string", "boolean": "boolean", "datetime": "datetime"}


def _column_type(kind: str, dtype: Any) -> str:
    """The MLflow type of one raw input column: the contract's type, refined by how the training
    data holds it. MLflow refuses int64 for a ``double`` column ("can not safely convert"), so a
    column stored as integers is ``long``; a category stored as numbers keeps its numeric type."""
    import pandas as pd

    if kind == "datetime":
        return "datetime"
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "long"
    if pd.api.types.is_float_dtype(dtype):
        return "double"
    return _MLFLOW_TYPES.get(kind, "double")


def model_signature(predictor: Predictor, example: Any):
    """A column-based signature of the raw input columns (``example``: a few raw rows of the
    prepared data) and of the output: class probabilities (classification) or values (regression)."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    kinds = {c.name: str(c.type) for c in predictor.contract.columns} if predictor.contract is not None else {}
    columns = [
        ColSpec(_column_type(kinds.get(name, "numeric"), example[name].dtype), name, required=True)
        for name in predictor.features
    ]
    if predictor.is_regression:
        outputs = Schema([TensorSpec(np.dtype(np.float64), (-1,), "value")])
    else:
        outputs = Schema([TensorSpec(np.dtype(np.float32), (-1, len(predictor.classes)), "probabilities")])
    return ModelSignature(inputs=Schema(columns), outputs=outputs)


def log_model_dir(
    model_dir: Path, example: Any, *, artifact_name: str, features: list[str], classes: list[Any], target: str
):
    """Log a model directory to the active run as an MLflow pyfunc (models from code) whose
    signature names the raw input columns with their types; ``example``: a few raw rows (a
    DataFrame of the prepared data), also the input example. Returns MLflow's ModelInfo."""
    predictor = Predictor.load(model_dir)
    example = example[predictor.features].reset_index(drop=True)
    signature = model_signature(predictor, example)
    code = Path(__file__).resolve().parent / "pyfunc_model.py"
    import pandas as pd

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
            f"pandas=={pd.__version__}",
        ],
        metadata={"features": features, "classes": classes, "target": target, "task": predictor.task},
    )
