"""The retraining policy: on drift, the pipeline command runs in the project with the window
exported; its failure is recorded, not raised."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

import drift_scenarios as scenarios
from aiinfra.monitoring.drift_monitor import run_once
from aiinfra.monitoring.retrain import retrain
from monhelpers import cfg_with


def _script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "fake_pipeline.py"
    path.write_text(body)
    return [sys.executable, str(path)]


def test_drift_with_policy_retrain_runs_the_pipeline_on_the_exported_window(mon, tmp_path, aiinfra_plugin_manager):
    mon.reference(rows=2000)
    mon.log("mean_shift", rows=3000, hours=2)
    marker = tmp_path / "ran.json"
    # stands in for `python -m aiinfra repro`: records that it ran, and on which window files
    command = _script(
        tmp_path,
        "import json, pathlib, sys\n"
        f"files = sorted(str(p) for p in pathlib.Path({str(mon.root / 'data' / 'feedback')!r}).glob('*.parquet'))\n"
        f"pathlib.Path({str(marker)!r}).write_text(json.dumps(files))\n",
    )
    cfg = cfg_with(
        mon.cfg("monitor.report=false"),
        retrain={"policy": "retrain", "command": command, "timeout_s": 60, "export_window": True},
    )
    verdict = run_once(cfg)
    assert verdict["drift_detected"]
    assert verdict["retrain"]["ok"] is True and verdict["retrain"]["exit_code"] == 0
    exported = json.loads(marker.read_text())
    assert exported == [verdict["retrain"]["window"]]
    assert pq.read_table(exported[0]).num_rows == 3000
    on_disk = json.loads((mon.reports / "verdict.json").read_text())
    assert on_disk["retrain"]["ok"] is True


def test_no_retrain_without_drift(mon, tmp_path, aiinfra_plugin_manager):
    mon.reference(rows=2000)
    pd.DataFrame(scenarios.make("no_drift", 2000, seed=4)).to_parquet(tmp_path / "cur.parquet")
    marker = tmp_path / "ran"
    cfg = cfg_with(
        mon.cfg(f"monitor.current={tmp_path / 'cur.parquet'}", "monitor.report=false"),
        retrain={
            "policy": "retrain",
            "command": _script(tmp_path, f"open({str(marker)!r}, 'w')"),
            "timeout_s": 60,
            "export_window": False,
        },
    )
    assert "retrain" not in run_once(cfg) and not marker.exists()


def test_a_failing_or_hanging_pipeline_is_recorded(mon, tmp_path, aiinfra_plugin_manager):
    cfg = cfg_with(
        mon.cfg(),
        retrain={
            "policy": "retrain",
            "timeout_s": 60,
            "export_window": False,
            "command": _script(tmp_path, "import sys; print('boom'); sys.exit(3)"),
        },
    )
    out = retrain(cfg, {"finished": "2026-11-28T12:00:00+00:00"})
    assert out["ok"] is False and out["exit_code"] == 3 and "boom" in out["output_tail"]
    cfg = cfg_with(
        cfg,
        retrain={
            "policy": "retrain",
            "timeout_s": 0.5,
            "export_window": False,
            "command": _script(tmp_path, "import time; time.sleep(30)"),
        },
    )
    out = retrain(cfg, {})
    assert out["ok"] is False and "timed out" in out["error"]
