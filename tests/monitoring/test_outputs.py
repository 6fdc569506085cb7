"""Prometheus gauges, the drift history and its plot, watch mode, light imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import drift_scenarios as scenarios
from aiinfra.errors import AiinfraError
from aiinfra.monitoring import charts, history, metrics, report_worker
from aiinfra.monitoring.drift_monitor import run_monitor, run_once
from aiinfra.stages import monitor as monitor_stage
from monhelpers import cfg_with

VERDICT = {
    "drift_detected": True,
    "drift_share": 0.5,
    "threshold": 0.5,
    "rows": {"current": 1234},
    "finished_unix": 1700000000.0,
    "finished": "2026-11-28T12:00:00+00:00",
    "columns": {
        "age": {"method": "ks", "score": 0.001, "threshold": 0.05, "drifted": True},
        'we"ird': {"method": "wasserstein", "score": 0.02, "threshold": 0.1, "drifted": False},
    },
}


def test_drift_gauges_and_the_textfile(tmp_path):
    gauges = {(name, tuple(sorted(labels.items()))): value for name, labels, value in metrics.drift_gauges(VERDICT)}
    assert gauges[("aiinfra_drift_share", ())] == 0.5
    assert gauges[("aiinfra_drift_detected", ())] == 1.0
    assert gauges[("aiinfra_drift_column_score", (("column", "age"), ("method", "ks")))] == 0.001
    assert gauges[("aiinfra_drift_column_drifted", (("column", "age"),))] == 1.0
    path = metrics.write_textfile(VERDICT, tmp_path / "drift.prom")
    text = path.read_text()
    # the format Prometheus parses: prometheus_client's own parser reads it back
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["aiinfra_drift_share"].samples[0].value == 0.5
    weird = [s for s in families["aiinfra_drift_column_score"].samples if s.labels["column"] == 'we"ird']
    assert weird and weird[0].value == 0.02


def test_history_plot_has_a_chart_per_column(tmp_path):
    for share in (0.0, 0.25, 0.5):
        history.append(tmp_path, {**VERDICT, "drift_share": share})
    with (tmp_path / history.HISTORY).open("a") as fh:
        fh.write('{"torn line')  # a run killed mid-write
    path = history.render(tmp_path / history.HISTORY)
    page = path.read_text()
    figures = charts.read_figures(path)
    assert [f["id"] for f in figures] == ["drift_share", "column:age", 'column:we"ird']  # share + 2 columns
    assert "3 runs" in page and figures[1]["layout"]["title"]["text"] == "age (ks)"
    assert figures[2]["layout"]["title"]["text"] == "we&quot;ird (wasserstein)"
    assert figures[0]["layout"]["yaxis"]["range"] == [0.0, 1.0]


def test_history_plots_model_quality_and_target_drift_when_labels_arrive(tmp_path):
    history.append(tmp_path, VERDICT)  # a run before any label arrived (and an older record's shape)
    labelled = {
        **VERDICT,
        "prediction": {"method": "jensenshannon", "score": 0.03, "threshold": 0.1, "drifted": False},
        "feedback": {
            "labelled_rows": 800,
            "accuracy": 0.81,
            "target": {"method": "jensenshannon", "score": 0.2, "threshold": 0.1, "drifted": True},
        },
    }
    history.append(tmp_path, labelled)
    history.append(tmp_path, {**labelled, "feedback": {**labelled["feedback"], "accuracy": 0.64}})
    runs = history.load(tmp_path / history.HISTORY)
    assert [r["accuracy"] for r in runs] == [None, 0.81, 0.64]
    assert runs[1]["labelled_rows"] == 800 and runs[2]["target"]["drifted"] is True
    assert runs[0]["prediction"] is None and runs[1]["prediction"]["score"] == 0.03
    figures = {f["id"]: f for f in charts.read_figures(history.render(tmp_path / history.HISTORY))}
    # share + accuracy + prediction + target + 2 columns
    assert list(figures) == ["drift_share", "accuracy", "prediction", "target", "column:age", 'column:we"ird']
    assert figures["prediction"]["layout"]["title"]["text"] == "Prediction drift (jensenshannon)"
    accuracy = figures["accuracy"]["data"][0]
    assert accuracy["y"] == [None, 0.81, 0.64] and "0.6400 on 800 labelled rows" in accuracy["hovertext"][2]


def test_watch_runs_on_an_interval_and_keeps_going_after_a_bad_run(mon, tmp_path, aiinfra_plugin_manager):
    mon.reference(rows=2000)
    pd.DataFrame(scenarios.make("no_drift", 2000, seed=4)).to_parquet(tmp_path / "cur.parquet")
    cfg = mon.cfg(
        f"monitor.current={tmp_path / 'cur.parquet'}",
        "monitor.report=false",
        "monitor.watch_interval_s=0.2",
        "monitor.watch_max_runs=3",
    )
    assert run_monitor(cfg) == 0
    runs = history.load(mon.reports / history.HISTORY)
    assert len(runs) == 3 and all(r["drift_detected"] is False for r in runs)
    # a missing file is an error run (status 2, logged), and the loop still ends where it should
    bad = cfg_with(cfg, current=str(tmp_path / "gone.parquet"), watch_max_runs=2)
    assert run_monitor(bad) == 2
    assert len(history.load(mon.reports / history.HISTORY)) == 3
    # a single run raises the error (the runner prints it and exits 2)
    with pytest.raises(AiinfraError, match="current data file not found"):
        run_monitor(cfg_with(bad, watch_interval_s=0))


def _imported(modules: str, heavy: tuple[str, ...]) -> list[str]:
    code = f"import sys, {modules}; print(','.join(sorted(m for m in {heavy!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_importing_the_monitor_is_light():
    heavy = ("evidently", "mlflow", "torch", "pandas", "scipy")
    assert (
        _imported(
            "aiinfra.monitoring.schema, aiinfra.monitoring.components, aiinfra.monitoring.drift_monitor, "
            "aiinfra.monitoring.sinks, aiinfra.monitoring.metrics",
            heavy,
        )
        == []
    )
    # imported by the runner before the config is composed, and by the hook spec
    assert _imported("aiinfra.stages.monitor, aiinfra.monitoring.verdict", (*heavy, "numpy", "pyarrow")) == []


def test_sinks_are_registered_components(aiinfra_plugin_manager):
    names = aiinfra_plugin_manager.registry.names("sink")
    assert {"log", "file", "webhook"} <= set(names)
    assert aiinfra_plugin_manager.registry.get("monitor", "drift").load() is run_monitor
    registry = aiinfra_plugin_manager.registry
    schemas = {n: registry.get("sink", n).load_schema().__name__ for n in ("log", "file", "webhook")}
    assert schemas == {"log": "LogSinkConfig", "file": "FileSinkConfig", "webhook": "WebhookSinkConfig"}


def test_feedback_labels_give_accuracy_and_target_drift(mon, tmp_path, aiinfra_plugin_manager):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    mon.reference(rows=2000)  # target = (f00 > 0), as int
    mon.log(rows=3000, hours=1)
    logged = pq.read_table(mon.logs).to_pandas()  # hive columns date/hour come along; unused
    truth = (logged["f00"] > 0).astype(int).to_numpy()
    truth[:300] = 1 - truth[:300]  # 10% of the labels disagree with the prediction
    pq.write_table(
        pa.table({"request_id": logged["request_id"].iloc[::2], "target": truth[::2]}), tmp_path / "labels.parquet"
    )
    cfg = mon.cfg(f"monitor.feedback={tmp_path / 'labels.parquet'}", "monitor.report=false")
    verdict = run_monitor(cfg) is not None and json.loads((mon.reports / "verdict.json").read_text())
    fb = verdict["feedback"]
    assert fb["labelled_rows"] == 1500 and fb["window_rows"] == 3000
    expected = float(np.mean(truth[::2] == (logged["f00"] > 0).astype(int).to_numpy()[::2]))
    assert fb["accuracy"] == pytest.approx(expected)
    assert fb["target"]["method"] == "jensenshannon" and fb["target"]["drifted"] is False
    assert "aiinfra_feedback_accuracy" in (mon.reports / "drift.prom").read_text()
    pq.write_table(pa.table({"id": ["x"], "target": [1]}), tmp_path / "bad.parquet")
    bad = cfg_with(cfg, feedback=str(tmp_path / "bad.parquet"))
    with pytest.raises(AiinfraError, match="lacks column"):
        run_monitor(bad)


def test_report_on_drift_skips_evidently_when_nothing_drifted(mon, tmp_path, aiinfra_plugin_manager):
    mon.reference(rows=2000)
    pd.DataFrame(scenarios.make("no_drift", 2000, seed=4)).to_parquet(tmp_path / "same.parquet")
    pd.DataFrame(scenarios.make("mean_shift", 2000, seed=4)).to_parquet(tmp_path / "moved.parquet")
    cfg = mon.cfg(
        f"monitor.current={tmp_path / 'same.parquet'}",
        "monitor.report_on=drift",
        "monitor.report_sample_rows=500",
        "monitor.fail_on_drift=false",
    )
    verdict = run_once(cfg)
    assert "html" not in verdict["paths"] and verdict["report_skipped"].startswith("no drift")
    assert not (mon.reports / "report.html").exists()
    verdict = run_once(cfg_with(cfg, current=str(tmp_path / "moved.parquet")))
    assert verdict["drift_detected"] and Path(verdict["paths"]["html"]).is_file()


def test_watch_prewarms_the_report_process_for_the_next_run(mon, tmp_path, aiinfra_plugin_manager, monkeypatch):
    mon.reference(rows=2000)
    pd.DataFrame(scenarios.make("one_column", 2000, seed=4)).to_parquet(tmp_path / "cur.parquet")
    Worker = report_worker.ReportWorker
    started, taken = [], []
    original_init, original_take = Worker.__init__, Worker.take.__func__

    def counting_init(self):
        original_init(self)
        started.append(self)

    def counting_take(cls):
        taken.append(cls._spare is not None)  # was a warm worker waiting?
        return original_take(cls)

    monkeypatch.setattr(Worker, "__init__", counting_init)
    monkeypatch.setattr(Worker, "take", classmethod(counting_take))
    cfg = mon.cfg(
        f"monitor.current={tmp_path / 'cur.parquet'}",
        "monitor.report_sample_rows=500",
        "monitor.watch_interval_s=0.5",
        "monitor.watch_max_runs=2",
    )
    assert run_monitor(cfg) == 0
    # two processes in all: the second run took the one started after the first run
    assert len(started) == 2 and taken == [False, True]
    assert Worker._spare is None  # nothing left running after the loop
    assert all(w.proc.poll() is not None for w in started)
    assert len(history.load(mon.reports / history.HISTORY)) == 2


def test_the_stage_prestarts_evidently_and_stops_it_when_no_report_is_wanted(mon, aiinfra_plugin_manager):
    Worker = report_worker.ReportWorker
    for overrides, kept in ((("monitor.report=false",), False), ((), True)):
        early = monitor_stage.prestart()
        worker = Worker._spare
        assert worker is not None and worker.proc.poll() is None  # importing Evidently already
        early.configured(mon.cfg(*overrides))
        if kept:
            assert Worker._spare is worker and worker.proc.poll() is None
            assert Worker.take() is worker  # the run uses it
            worker.close()
        else:
            assert Worker._spare is None
            assert worker.proc.wait(timeout=10) is not None  # killed, not left importing
        early.close()
        assert Worker._spare is None


def test_the_prestarted_process_is_stopped_when_the_config_is_bad(mon, aiinfra_plugin_manager, monkeypatch):
    from aiinfra.errors import ConfigError
    from aiinfra.runner import run_stage_command

    Worker = report_worker.ReportWorker
    started = []
    original_init = Worker.__init__

    def recording_init(self):
        original_init(self)
        started.append(self)

    monkeypatch.setattr(Worker, "__init__", recording_init)
    monkeypatch.setenv("AIINFRA_PROJECT_DIR", str(mon.root))
    monkeypatch.chdir(mon.root)
    with pytest.raises(ConfigError, match=r"monitor\.drift_share: must be in \(0, 1\]"):
        run_stage_command("monitor", ["monitor.drift_share=2"])
    (worker,) = started  # the runner called the stage's prestart before composing the config ...
    assert worker.proc.poll() is not None and Worker._spare is None  # ... and its close() after the error


def test_a_labelled_file_reports_target_drift_apart(mon, tmp_path, aiinfra_plugin_manager):
    mon.reference(rows=2000)  # target = (f00 > 0)
    cols = scenarios.make("one_column", 2000, seed=4)  # f00 shifted: the labels shift too
    pd.DataFrame({**cols, "target": (cols["f00"] > 0).astype(int)}).to_parquet(tmp_path / "labelled.parquet")
    cfg = mon.cfg(f"monitor.current={tmp_path / 'labelled.parquet'}", "monitor.report=false")
    verdict = run_once(cfg)
    assert verdict["target"]["column"] == "target" and verdict["target"]["drifted"] is True
    assert "target" not in verdict["columns"] and verdict["drifted_columns"] == 1  # only f00 counts


def test_model_card_lists_the_monitor_history(mon, tmp_path, aiinfra_plugin_manager):
    """The card reads the history the monitor wrote (with its times), a torn last line included."""
    from aiinfra.governance.model_card import card_sections

    mon.reference(rows=2000)
    pd.DataFrame(scenarios.make("mean_shift", 2000, seed=4)).to_parquet(tmp_path / "cur.parquet")
    cfg = mon.cfg(f"monitor.current={tmp_path / 'cur.parquet'}", "monitor.report=false", "monitor.fail_on_drift=false")
    assert run_monitor(cfg) == 0
    with (mon.reports / history.HISTORY).open("a") as fh:
        fh.write('{"finished": "torn')  # a run killed mid-write
    run = history.load(mon.reports / history.HISTORY)[0]
    sections = dict(card_sections(cfg, name="m", version="1", train_run={}, metrics={}, gate={}, tags={}))
    assert sections["Drift history"] == [(run["finished"], f"drift=True share={run['drift_share']}")]
    # the next run's record is not glued onto the torn line (it was lost that way before), and a
    # run with feedback labels shows the model's accuracy in production
    history.append(
        mon.reports,
        {
            "finished": "2026-11-29T10:00:00+00:00",
            "drift_detected": False,
            "drift_share": 0.0,
            "feedback": {"accuracy": 0.8125, "labelled_rows": 16},
        },
    )
    sections = dict(card_sections(cfg, name="m", version="1", train_run={}, metrics={}, gate={}, tags={}))
    assert sections["Drift history"][-1] == (
        "2026-11-29T10:00:00+00:00",
        "drift=False share=0.0 accuracy=0.8125 on 16 labelled rows",
    )
    # a regression model's quality in production is its MAE and RMSE
    history.append(
        mon.reports,
        {
            "finished": "2026-11-29T11:00:00+00:00",
            "drift_detected": False,
            "drift_share": 0.0,
            "feedback": {"accuracy": None, "mae": 210.5, "rmse": 301.25, "labelled_rows": 40},
        },
    )
    sections = dict(card_sections(cfg, name="m", version="1", train_run={}, metrics={}, gate={}, tags={}))
    assert sections["Drift history"][-1][1] == "drift=False share=0.0 mae=210.5 rmse=301.2 on 40 labelled rows"
