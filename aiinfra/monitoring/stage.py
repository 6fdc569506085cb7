"""``aiinfra monitor``: one drift check (or a watch loop) of current data against the reference.

Order of work, each step's output safe before the next starts:
1. the verdict on every row (:mod:`engine`), written to ``verdict.json`` at once,
2. Evidently's HTML + JSON on a sample (:mod:`report`, in a child process started before 1),
3. ``verdict.json`` again with the report's paths, ``drift.prom``, ``history.jsonl`` and the
   drift-over-time page,
4. alerts (sinks and the ``aiinfra_on_drift`` hook) and the retrain policy, whose outcomes are
added to ``verdict.json`` afterwards.

Exit status: 0 no drift, 1 drift (only with ``monitor.fail_on_drift``), 2 error.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from aiinfra.errors import AiinfraError, ConfigError

log = logging.getLogger("aiinfra.monitor")

VERDICT = "verdict.json"
HTML = "report.html"
EVIDENTLY_JSON = "report.json"
PROM = "drift.prom"
POLICIES = ("none", "alert", "retrain")
REPORT_ON = ("always", "drift")


def _write_json(path: Path, data: dict) -> None:
    """Atomic: a reader (or a crash) never sees half a verdict."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str, allow_nan=True))
    os.replace(tmp, path)


def _check(mon: Any) -> None:
    if not 0.0 < float(mon.drift_share) <= 1.0:
        raise ConfigError(f"monitor.drift_share must be in (0, 1], got {mon.drift_share}")
    if str(mon.get("report_on", "always")) not in REPORT_ON:
        raise ConfigError(f"monitor.report_on: unknown value '{mon.report_on}'", hint=f"valid: {', '.join(REPORT_ON)}")
    policy = str(mon.retrain.policy)
    if policy not in POLICIES:
        raise ConfigError(f"monitor.retrain.policy: unknown policy '{policy}'", hint=f"valid: {', '.join(POLICIES)}")


def prestart_report() -> None:
    """Start the Evidently report process now (the CLI calls this before composing the config)."""
    from aiinfra.monitoring.report import ReportWorker

    ReportWorker.prewarm()


def keep_report_if_wanted(cfg: Any) -> None:
    """Stop the prestarted report process when this run will not render a report."""
    mon = cfg.get("monitor")
    if mon is None or str(mon.get("type")) != "drift" or not mon.get("report", True):
        discard_report()


def discard_report() -> None:
    from aiinfra.monitoring.report import ReportWorker

    ReportWorker.discard_spare()


def run_once(cfg: Any) -> dict:
    """One monitor run; returns the verdict (also written to ``<report_dir>/verdict.json``)."""
    from aiinfra.monitoring import alerts, engine, history, metrics, windows

    os.environ.setdefault("DO_NOT_TRACK", "1")
    mon = cfg.monitor
    _check(mon)
    started = time.perf_counter()
    worker = None
    try:
        if mon.report:
            from aiinfra.monitoring.report import ReportWorker

            # Evidently's import (3-4 s) runs on the other core while we read and test; the CLI has
            # usually started this process already, before composing the config
            worker = ReportWorker.take()
        current = windows.open_current(cfg)
        ref = engine.load_reference(cfg.paths.prepared)
        plans = engine.plan_columns(mon, ref, current)
        result = engine.run(mon, ref, current, plans, seed=int(cfg.get("seed", 0) or 0))
        labelled = None
        if mon.get("feedback"):
            from aiinfra.monitoring import feedback

            labelled = feedback.evaluate(str(mon.feedback), ref, current)
    except BaseException:
        if worker is not None:
            worker.close()
        raise
    verdict_s = time.perf_counter() - started

    features = [c for c in result.columns if c["counted"]]
    drifted = sum(1 for c in features if c["drifted"])
    share = drifted / len(features) if features else 0.0
    threshold = float(mon.drift_share)
    report_dir = Path(mon.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    verdict: dict[str, Any] = {
        "drift_detected": bool(features) and share >= threshold,  # Evidently's rule: share >= drift_share
        "drift_share": share,
        "threshold": threshold,
        "drifted_columns": drifted,
        "columns_total": len(features),
        "columns": {c["column"]: c for c in features},
        "prediction": next((c for c in result.columns if c["column"] == windows.PREDICTION and not c["counted"]), None),
        "target": next((c for c in result.columns if not c["counted"] and c["column"] != windows.PREDICTION), None),
        "feedback": labelled,
        "rows": {"current": result.rows_current, "reference": result.rows_reference},
        "rows_current": result.rows_current,
        "rows_reference": result.rows_reference,
        "current": current.description,
        "window": current.window,
        "skipped_files": current.skipped,
        "reference": str(ref.path),
        "dataset_hash": ref.meta.get("dataset_hash"),
        "models": result.models,
        "finished": now.isoformat(timespec="seconds"),
        "finished_unix": now.timestamp(),
        "seconds": {"verdict": round(verdict_s, 3)},
        "paths": {"report_dir": str(report_dir), "verdict": str(report_dir / VERDICT)},
    }
    _write_json(report_dir / VERDICT, verdict)  # the decision is safe before Evidently renders
    if worker is not None and mon.get("report_on", "always") == "drift" and not verdict["drift_detected"]:
        worker.close()  # nothing drifted: the verdict is the whole answer
        worker = None
        verdict["report_skipped"] = "no drift (monitor.report_on=drift)"

    if worker is not None:
        t = time.perf_counter()
        try:
            written = worker.render(
                sample_current=result.sample_current, reference=ref.table, results=result.columns,
                drift_share=threshold, html_path=report_dir / HTML, json_path=report_dir / EVIDENTLY_JSON,
                sample_rows=int(mon.report_sample_rows or 0), seed=int(cfg.get("seed", 0) or 0),
            )
            verdict["paths"].update(html=written["html"], json=written["json"])
            verdict["rows"]["report_sample"] = written["rows_current"]
            verdict["rows"]["report_sample_reference"] = written["rows_reference"]
        except Exception as exc:  # noqa: BLE001 - the verdict stands without its pictures
            log.error("the Evidently report failed (the verdict is still written): %s: %s", type(exc).__name__, exc)
            verdict["report_error"] = f"{type(exc).__name__}: {exc}"
        finally:
            worker.close()
        verdict["seconds"]["report"] = round(time.perf_counter() - t, 3)

    verdict["paths"]["prometheus"] = str(report_dir / PROM)
    verdict["paths"]["history"] = str(report_dir / history.HISTORY)
    verdict["paths"]["drift_over_time"] = str(report_dir / history.PLOT)
    verdict["seconds"]["total"] = round(time.perf_counter() - started, 3)
    _write_json(report_dir / VERDICT, verdict)
    metrics.write_textfile(verdict, report_dir / PROM)
    history.render(history.append(report_dir, verdict))
    log.info("verdict: %s (share %.3f, threshold %.3g); %s", "DRIFT" if verdict["drift_detected"] else "no drift",
             share, threshold, report_dir / VERDICT)

    # everything above is on disk: from here on, a failure only costs its own step
    policy = str(mon.retrain.policy)
    if policy != "none":
        verdict["alerts"] = alerts.dispatch(verdict, cfg)
    if policy == "retrain" and verdict["drift_detected"]:
        from aiinfra.monitoring.retrain import retrain

        verdict["retrain"] = retrain(cfg, verdict, current)
    if "alerts" in verdict or "retrain" in verdict:
        _write_json(report_dir / VERDICT, verdict)
    return verdict


def exit_code(verdict: dict, cfg: Any) -> int:
    return 1 if verdict.get("drift_detected") and cfg.monitor.fail_on_drift else 0


def _error(exc: AiinfraError) -> int:
    print(f"aiinfra: error: {exc}", file=sys.stderr)
    return exc.exit_code


def run_monitor(cfg: Any) -> int:
    """The ``monitor`` component: 0 no drift, 1 drift (with ``fail_on_drift``), 2 error."""
    if float(cfg.monitor.get("watch_interval_s") or 0) > 0:
        from aiinfra.monitoring.watch import watch

        return watch(cfg, run_once, exit_code, _error)
    try:
        return exit_code(run_once(cfg), cfg)
    except AiinfraError as exc:
        return _error(exc)
