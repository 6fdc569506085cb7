"""``aiinfra monitor`` as operators run it: exit status 0 / 1 / 2, the files it leaves."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import drift_scenarios as scenarios
from aiinfra.monitoring import charts


def test_no_drift_on_the_prediction_log_writes_every_output(mon):
    mon.reference(rows=3000)
    mon.log(rows=4000, hours=3)
    proc = mon.cli("monitor", "monitor.report_sample_rows=1000")
    assert proc.returncode == 0, proc.stderr
    verdict = json.loads((mon.reports / "verdict.json").read_text())
    assert verdict["drift_detected"] is False and verdict["drift_share"] == 0.0
    assert verdict["columns_total"] == 16 and verdict["rows"]["current"] == 4000
    assert verdict["rows"]["report_sample"] == 1000
    assert (
        verdict["columns"]["f00"]["method"] == "wasserstein" and verdict["columns"]["f13"]["method"] == "jensenshannon"
    )
    assert verdict["prediction"]["reference_column"] == "target"  # logged predictions vs the reference target
    assert verdict["models"] == {"model_name": ["model"], "model_version": ["1"]}
    assert "report_error" not in verdict
    # Evidently's own report and JSON, on the sample, with the same methods
    html = (mon.reports / "report.html").read_text()
    assert "Value Drift for column f00" in html and "Share of Drifted Columns" in html
    snapshot = json.loads((mon.reports / "report.json").read_text())
    methods = {
        m["config"]["column"]: m["config"]["method"]
        for m in snapshot["metrics"]
        if m["config"]["type"].endswith("ValueDrift")
    }
    assert methods["f00"] == "wasserstein" and "prediction" in methods
    prom = (mon.reports / "drift.prom").read_text()
    assert "aiinfra_drift_share 0.0" in prom and 'aiinfra_drift_column_score{column="f00",method="wasserstein"}' in prom
    assert len((mon.reports / "history.jsonl").read_text().splitlines()) == 1
    figures = charts.read_figures(mon.reports / "drift_over_time.html")
    # share + prediction + 16 columns
    assert len(figures) == 18 and figures[1]["layout"]["title"]["text"].startswith("Prediction drift (")


def test_drift_on_a_file_is_exit_1_unless_fail_on_drift_is_off(mon, tmp_path):
    mon.reference(rows=3000)
    cur = pd.DataFrame(scenarios.make("mean_shift", 5000, seed=3))
    cur.to_parquet(tmp_path / "new.parquet")
    proc = mon.cli("monitor", f"monitor.current={tmp_path / 'new.parquet'}", "monitor.report=false")
    assert proc.returncode == 1, proc.stderr
    verdict = json.loads((mon.reports / "verdict.json").read_text())
    assert verdict["drift_detected"] is True and verdict["drifted_columns"] == 10
    assert "DRIFT: 10/16 columns drifted" in proc.stderr  # the log sink's line
    proc = mon.cli(
        "monitor", f"monitor.current={tmp_path / 'new.parquet'}", "monitor.report=false", "monitor.fail_on_drift=false"
    )
    assert proc.returncode == 0, proc.stderr
    assert len((mon.reports / "history.jsonl").read_text().splitlines()) == 2


def test_a_csv_missing_a_column_is_one_clear_error(mon, tmp_path):
    mon.reference(rows=2000)
    cur = pd.DataFrame(scenarios.make("no_drift", 500, seed=3)).drop(columns=["f05"])
    cur.to_csv(tmp_path / "new.csv", index=False)
    proc = mon.cli("monitor", f"monitor.current={tmp_path / 'new.csv'}", "monitor.report=false")
    assert proc.returncode == 2
    assert "f05" in proc.stderr and "hint:" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "setup,args,words",
    [
        ("garbage", ["monitor.current={tmp}/bad.parquet"], "cannot read current data"),
        ("no-reference", ["monitor.current={tmp}/ok.parquet"], "aiinfra prepare"),
        ("no-log", [], "no prediction log"),
        ("ok", ["monitor.current={tmp}/ok.parquet", "monitor.method=chisqure"], "monitor.method"),
        (
            "ok",
            ["monitor.current={tmp}/ok.parquet", "+monitor.per_column_method.f00=chisquare"],
            "does not apply to numerical column 'f00'",
        ),
    ],
)
def test_bad_input_exits_2_with_the_fix(mon, tmp_path, setup, args, words):
    if setup != "no-reference":
        mon.reference(rows=1500)
    (tmp_path / "bad.parquet").write_text("this is not parquet")
    pd.DataFrame(scenarios.make("no_drift", 300, seed=3)).to_parquet(tmp_path / "ok.parquet")
    proc = mon.cli("monitor", "monitor.report=false", *[a.format(tmp=tmp_path) for a in args])
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr
