"""The ``drift`` monitor: one drift check (or a watch loop) of current data against the reference.

Order of work, each step's output safe before the next starts:
1. the verdict on every row (:mod:`engine`), written to ``verdict.json`` at once,
2. Evidently's HTML + JSON on a sample (:mod:`report`, in a child process started before 1),
3. ``verdict.json`` again with the report's paths, ``drift.prom``, ``history.jsonl`` and the
   drift-over-time page,
4. alerts (sinks and the ``aiinfra_on_drift`` hook) and the retrain policy, whose outcomes are
   added to ``verdict.json`` afterwards.

The config was validated before (``monitor.*`` rules: :mod:`aiinfra.monitoring.schema`); what is
checked here depends on the data (columns, their types, the window's rows).

Exit status: 0 no drift, 1 drift or a breached threshold (:mod:`thresholds`; only with
``monitor.fail_on_drift``); a user error raises
(the runner reports it, status 2).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from pathlib import Path

from aiinfra.config.schema import RootConfig
from aiinfra.monitoring import alerts, engine, feedback, history, metrics, thresholds, windows
from aiinfra.monitoring.report_worker import ReportWorker
from aiinfra.monitoring.retrain import retrain
from aiinfra.monitoring.schema import ReportOn, RetrainPolicy
from aiinfra.monitoring.verdict import DriftReport
from aiinfra.monitoring.watch import watch
from aiinfra.storage import urls

log = logging.getLogger("aiinfra.monitor")

VERDICT = "verdict.json"
HTML = "report.html"
EVIDENTLY_JSON = "report.json"
PROM = "drift.prom"


def _write_json(path: Path, data: dict) -> None:
    """Atomic: a reader (or a crash) never sees half a verdict."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str, allow_nan=True))
    os.replace(tmp, path)


def run_once(cfg: RootConfig) -> DriftReport:
    """One monitor run; returns the verdict (also written to ``<report_dir>/verdict.json``)."""
    mon = cfg.monitor
    started = time.perf_counter()
    worker = None
    try:
        if mon.report:
            # Evidently's import (3-4 s) runs on the other core while we read and test; the stage's
            # prestart has usually started this process already, before the config was composed
            worker = ReportWorker.take()
        current = windows.open_current(cfg)
        ref = engine.load_reference(cfg.paths.prepared)
        # columns the log protects (server.log_privacy: drop/hash/redact) cannot be compared
        protected = windows.protected_features(current, list(mon.columns or ref.meta["features"]), cfg.server)
        plans = engine.plan_columns(_without(mon, ref, protected), ref, current)
        result = engine.run(mon, ref, current, plans, seed=cfg.seed)
        result.columns.extend(_protected_results(protected, ref, result.rows_current))
        labelled = feedback.evaluate(mon.feedback, ref, current, cfg.server) if mon.feedback else None
    except BaseException:
        if worker is not None:
            worker.close()
        raise
    verdict_s = time.perf_counter() - started

    features = [c for c in result.columns if c["counted"]]
    skipped = [c for c in result.columns if c.get("role") == "skipped"]
    drifted = sum(1 for c in features if c["drifted"])
    share = drifted / len(features) if features else 0.0
    threshold = mon.drift_share
    report_dir = Path(mon.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    verdict = DriftReport(
        drift_detected=bool(features) and share >= threshold,  # Evidently's rule: share >= drift_share
        drift_share=share,
        threshold=threshold,
        drifted_columns=drifted,
        columns_total=len(features),
        # the counted features, then the contract's columns that were not compared (with why)
        columns={c["column"]: c for c in [*features, *skipped]},
        prediction=next((c for c in result.columns if _role(c) == "prediction"), None),
        target=next((c for c in result.columns if _role(c) == "target"), None),
        feedback=labelled,
        rows={"current": result.rows_current, "reference": result.rows_reference},
        current=current.description,
        window=current.window,
        skipped_files=current.skipped,
        # redacted: the verdict lasts (history, alerts, the model card); a signed URL's query is a key
        reference=urls.redact(str(ref.path)),
        task=ref.task,
        contract=urls.redact(str(ref.contract.path)) if ref.contract is not None else None,
        dataset_hash=ref.meta.get("dataset_hash"),  # meta.json of an older prepare may lack it
        models=result.models,
        finished=now.isoformat(timespec="seconds"),
        finished_unix=now.timestamp(),
        seconds={"verdict": round(verdict_s, 3)},
        paths={"report_dir": str(report_dir), "verdict": str(report_dir / VERDICT)},
    )
    if skipped:
        verdict["skipped_columns"] = {c["column"]: c.get("note", "skipped") for c in skipped}
    verdict["thresholds"] = thresholds.configured(mon)
    verdict["breaches"] = thresholds.breaches(mon, verdict["columns"], labelled)
    verdict["alert"] = verdict["drift_detected"] or bool(verdict["breaches"])
    for breach in verdict["breaches"]:
        log.warning("threshold: %s", breach["message"])
    _write_json(report_dir / VERDICT, verdict)  # the decision is safe before Evidently renders
    if worker is not None and mon.report_on == ReportOn.drift and not verdict["alert"]:
        worker.close()  # nothing drifted: the verdict is the whole answer
        worker = None
        verdict["report_skipped"] = "no drift (monitor.report_on=drift)"

    if worker is not None:
        t = time.perf_counter()
        try:
            written = worker.render(
                sample_current=result.sample_current,
                reference=ref.table,
                results=result.columns,
                drift_share=threshold,
                html_path=report_dir / HTML,
                json_path=report_dir / EVIDENTLY_JSON,
                sample_rows=mon.report_sample_rows,
                seed=cfg.seed,
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
    log.info(
        "verdict: %s (share %.3f, threshold %.3g)%s; %s",
        "DRIFT" if verdict["drift_detected"] else "no drift",
        share,
        threshold,
        f", {len(verdict['breaches'])} threshold(s) breached" if verdict["breaches"] else "",
        report_dir / VERDICT,
    )

    # everything above is on disk: from here on, a failure only costs its own step
    policy = mon.retrain.policy
    if policy != RetrainPolicy.none:
        verdict["alerts"] = alerts.dispatch(verdict, cfg)
    if policy == RetrainPolicy.retrain and verdict["alert"]:
        verdict["retrain"] = retrain(cfg, verdict, current)
    if "alerts" in verdict or "retrain" in verdict:
        _write_json(report_dir / VERDICT, verdict)
    return verdict


def _without(mon, ref: engine.Reference, protected: dict[str, str]):
    """``mon`` monitoring only the features the log keeps as sent."""
    if not protected:
        return mon
    import dataclasses

    from aiinfra.errors import AiinfraError

    kept = [f for f in (mon.columns or ref.meta["features"]) if f not in protected]
    if not kept:
        raise AiinfraError(
            "every monitored feature is protected in the prediction log (server.log_privacy: "
            f"{', '.join(f'{k}={v}' for k, v in protected.items())}): nothing can be compared with the reference",
            hint="keep some features (server.log_privacy.columns.<name>=keep), or monitor a file: monitor.current=...",
        )
    return dataclasses.replace(
        mon,
        columns=kept,
        per_column_method={k: v for k, v in mon.per_column_method.items() if k not in protected},
        per_column_threshold={k: v for k, v in mon.per_column_threshold.items() if k not in protected},
    )


def _protected_results(protected: dict[str, str], ref: engine.Reference, rows_current: int) -> list[dict]:
    """A skipped entry per protected feature: why it is not compared (its values are not the
    values the reference has)."""
    out = []
    for name, policy in protected.items():
        note = f"protected in the prediction log (server.log_privacy: {policy}): not comparable with the reference"
        log.info("column '%s' is not compared: %s", name, note)
        ref_col = ref.table.column(name) if name in ref.table.column_names else None
        ref_missing = ref_col.null_count / len(ref_col) if ref_col is not None and len(ref_col) else 0.0
        out.append(
            dict(
                column=name,
                reference_column=name,
                type="categorical",
                rows_reference=ref.table.num_rows,
                rows_current=rows_current,
                missing_share_reference=ref_missing,
                missing_share_current=None,
                counted=False,
                method="skipped",
                score=None,
                threshold=None,
                drifted=False,
                note=note,
                role="skipped",
                compared_as="skipped",
            )
        )
    return out


def _role(column: dict) -> str:
    """A result's role; results without one (no data contract) by the rule they always had."""
    if "role" in column:
        return column["role"]
    if column["counted"]:
        return "feature"
    return "prediction" if column["column"] == windows.PREDICTION else "target"


def exit_code(verdict: DriftReport, cfg: RootConfig) -> int:
    """1 on drift or a breached threshold (with ``fail_on_drift``), else 0."""
    alert = verdict.get("alert", verdict["drift_detected"])
    return 1 if alert and cfg.monitor.fail_on_drift else 0


def run_monitor(cfg: RootConfig) -> int:
    """The ``drift`` monitor component: 0 no drift, 1 drift (with ``fail_on_drift``).

    A user error (bad file, missing column, empty window) raises :class:`~aiinfra.errors.AiinfraError`
    in a single run; in watch mode it is logged and the loop goes on.
    """
    # the logs' retention (server.log_privacy.retention_days): the monitor may run where no server does
    from aiinfra.serving import retention

    retention.sweep(cfg)
    if cfg.monitor.watch_interval_s > 0:
        return watch(cfg, run_once, exit_code)
    return exit_code(run_once(cfg), cfg)
