"""Retraining on drift (``monitor.retrain.policy: retrain``): run the project's DVC pipeline.

The pipeline (``python -m aiinfra repro`` = compose params.yaml + ``dvc repro``) retrains,
evaluates and registers; the register stage's gate decides whether the champion alias moves, and
the server hot-reloads the alias. Before it runs, the drifted window is exported to
``<paths.feedback>/window-<time>.parquet`` (with labels joined from ``monitor.feedback``), which
``prepare`` adds to the source data: the new model trains on the new data plus the old.
``paths.feedback`` may be an object-store URL; the window is then one object that appears only
once completely written.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiinfra.config.schema import RootConfig
from aiinfra.data.prepared import PreparedData
from aiinfra.monitoring.feedback import read_labels
from aiinfra.monitoring.verdict import DriftReport, RetrainOutcome
from aiinfra.monitoring.windows import REQUEST_ID, CurrentData, protected_features
from aiinfra.storage import urls

log = logging.getLogger("aiinfra.monitor")


def export_window(cfg: RootConfig, current: CurrentData, stamp: str) -> Path | str:
    """Write the window (a :class:`~aiinfra.monitoring.windows.CurrentData`) to the feedback
    inbox (``paths.feedback``) that ``prepare`` reads. With ``monitor.feedback`` the labels are
    joined by request id, so the retrained model learns from the new data; without labels the
    rows are kept for the record and ``prepare`` skips them."""
    name = f"window-{stamp}.parquet"
    if urls.is_remote(cfg.paths.feedback):
        out = urls.join(cfg.paths.feedback, name)
        with urls.storage_errors(out, "paths.feedback"):
            f = urls.open_file(out, "wb")
            try:
                wrote = _write_window(cfg, current, f)
            except BaseException:
                f.discard()  # an object store: the upload is aborted, no half object appears
                raise
            if wrote:
                f.close()
            else:  # an empty window: no object (as locally, no file)
                f.discard()
        return out
    path = Path(cfg.paths.feedback) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_window(cfg, current, path)
    return path


def _write_window(cfg: RootConfig, current: CurrentData, where: Any) -> bool:
    """The window's rows (labelled with ``monitor.feedback``) as Parquet to a path or file object;
    False when there was nothing to write."""
    import pyarrow.parquet as pq

    if cfg.monitor.feedback:
        pq.write_table(_labelled(cfg, current), where)
        return True
    writer = None
    try:
        for batch in current.dataset.to_batches(filter=current.filter):
            if writer is None:
                writer = pq.ParquetWriter(where, batch.schema)
            writer.write_batch(batch)
    finally:
        if writer is not None:
            writer.close()
    return writer is not None


def _labelled(cfg: RootConfig, current: CurrentData) -> Any:
    """The window's rows that have a label, with the target column next to the features.

    The log is decrypted with the config's keys (``server.log_privacy``). A feature the log
    protects (``drop``, ``hash``, ``redact``) is exported as missing values: a hash or
    ``"[redacted]"`` is not the value the model was trained on, and ``prepare`` takes a gap."""
    import pyarrow as pa

    data = PreparedData.open(cfg.paths.prepared)
    labels = read_labels(cfg.monitor.feedback, data.target, cfg.server)
    protected = protected_features(current, data.features, cfg.server)
    present = [f for f in data.features if f not in protected and f in current.names]
    window = current.table([REQUEST_ID, *present])
    joined = window.join(labels, keys=REQUEST_ID, join_type="inner")
    for name in data.features:
        if name not in present:
            joined = joined.append_column(name, pa.nulls(joined.num_rows))
    if protected:
        log.info("retrain export: protected column(s) %s exported as missing values", ", ".join(sorted(protected)))
    return joined.select([*data.features, data.target])


def retrain(cfg: RootConfig, verdict: DriftReport, current: CurrentData | None = None) -> RetrainOutcome:
    """Run the retraining command in the project root; return what happened (never raises)."""
    policy = cfg.monitor.retrain
    command = [sys.executable if part == "{python}" else str(part) for part in policy.command]
    result: dict[str, Any] = {"command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if current is not None and policy.export_window:
        stamp = str(verdict.get("finished", "")).replace(":", "").replace("-", "")[:15] or str(int(time.time()))
        result["window"] = urls.redact(str(export_window(cfg, current, stamp)))  # kept in the verdict
    started = time.perf_counter()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=policy.timeout_s)
        result.update(
            exit_code=proc.returncode, ok=proc.returncode == 0, output_tail=(proc.stdout + proc.stderr)[-4000:]
        )
    except subprocess.TimeoutExpired:
        result.update(exit_code=None, ok=False, error=f"timed out after {policy.timeout_s} s")
    except OSError as exc:
        result.update(exit_code=None, ok=False, error=f"{type(exc).__name__}: {exc}")
    result["seconds"] = round(time.perf_counter() - started, 3)
    (log.info if result.get("ok") else log.error)(
        "retrain %s: %s (exit %s, %.1f s)",
        "done" if result.get("ok") else "failed",
        " ".join(command),
        result.get("exit_code"),
        result["seconds"],
    )
    return RetrainOutcome(**result)
