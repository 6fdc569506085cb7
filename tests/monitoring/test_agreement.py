"""Per-column verdicts equal Evidently's own DataDriftPreset on the whole data, per scenario.

Sizes are modest so the test is fast; bench/monitor_bench.py repeats this at 100k and 1M rows.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import drift_scenarios as scenarios
from aiinfra.monitoring import engine, windows
from aiinfra.monitoring.schema import DriftMonitorConfig
from evidently_yardstick import evidently_direct


def _compare(tmp_path, scenario, n_ref, n_cur, mon):
    names = scenarios.feature_names()
    ref = frame_of(scenarios.make(scenario, n_ref, seed=11, reference=True))
    cur = frame_of(scenarios.make(scenario, n_cur, seed=12))
    scenarios.write_reference(tmp_path / "prepared", {c: ref[c].to_numpy() for c in names})
    pq.write_table(pa.Table.from_pandas(cur), tmp_path / "current.parquet")

    reference = engine.load_reference(tmp_path / "prepared")
    current = windows.open_file(tmp_path / "current.parquet")
    ours = engine.run(mon, reference, current, engine.plan_columns(mon, reference, current))
    theirs = evidently_direct(
        ref, cur, numerical=names, categorical=[], method=None if mon.method == "auto" else str(mon.method)
    )
    mine = {c["column"]: c for c in ours.columns}
    assert set(theirs["columns"]) == set(names)
    for name, ev in theirs["columns"].items():
        assert mine[name]["method"] == ev["method"], name
        assert mine[name]["drifted"] == ev["drifted"], (name, mine[name], ev)
        assert mine[name]["score"] == pytest.approx(ev["score"], rel=1e-9, abs=1e-12), name
    share = sum(c["drifted"] for c in ours.columns) / len(names)
    assert share == pytest.approx(theirs["share"])
    return share


def frame_of(columns):
    import pandas as pd

    return pd.DataFrame(columns)


EXPECTED_SHARE = {  # what each scenario is built to show (with the auto methods, reference > 1000)
    "no_drift": 0.0,
    "mean_shift": 10 / 16,
    "variance_shift": 12 / 16,
    "category_shift": 3 / 16,
    "missing_rising": 12 / 16,
    "one_column": 1 / 16,
}


@pytest.mark.parametrize("scenario", scenarios.SCENARIOS)
def test_auto_methods_agree_with_evidently(tmp_path, scenario, evidently_loaded):
    mon = DriftMonitorConfig(method="auto", report_sample_rows=500, threads=2)
    share = _compare(tmp_path, scenario, 2000, 6000, mon)
    assert share == pytest.approx(EXPECTED_SHARE[scenario])


@pytest.mark.parametrize(
    "scenario,method", [("mean_shift", "auto"), ("category_shift", "auto"), ("missing_rising", "psi")]
)
def test_small_reference_and_explicit_methods_agree(tmp_path, scenario, method, evidently_loaded):
    # reference <= 1000 rows: Evidently's auto choice is ks / chisquare / z
    _compare(tmp_path, scenario, 800, 3000, DriftMonitorConfig(method=method, report_sample_rows=500, threads=2))


def test_string_categories_and_missing_values_in_a_csv_agree(tmp_path, evidently_loaded):
    import numpy as np
    import pandas as pd

    g = np.random.default_rng(5)
    ref = pd.DataFrame(
        {
            "x": g.normal(size=1500),
            "city": g.choice(["oslo", "rome", "lima"], 1500),
            "flag": g.choice(["yes", "no"], 1500),
        }
    )
    cur = pd.DataFrame(
        {
            "x": np.where(g.random(2500) < 0.3, np.nan, g.normal(0.05, size=2500)),
            "city": g.choice(["oslo", "rome", "lima", "kyiv"], 2500, p=[0.2, 0.3, 0.3, 0.2]),
            "flag": g.choice(["yes", "no", None], 2500),
        }
    )
    (tmp_path / "prepared").mkdir()
    ref.assign(target=0).to_parquet(tmp_path / "prepared" / "reference.parquet")
    (tmp_path / "prepared" / "meta.json").write_text('{"features": ["x", "city", "flag"], "target": "target"}')
    cur.to_csv(tmp_path / "current.csv", index=False)
    mon = DriftMonitorConfig(report_sample_rows=500, threads=2)
    reference = engine.load_reference(tmp_path / "prepared")
    current = windows.open_file(tmp_path / "current.csv")
    ours = {
        c["column"]: c
        for c in engine.run(mon, reference, current, engine.plan_columns(mon, reference, current)).columns
    }
    theirs = evidently_direct(ref, cur, numerical=["x"], categorical=["city", "flag"])
    for name, ev in theirs["columns"].items():
        assert (ours[name]["method"], ours[name]["drifted"]) == (ev["method"], ev["drifted"]), name
        assert ours[name]["score"] == pytest.approx(ev["score"], rel=1e-9), name
    assert ours["city"]["drifted"] and ours["x"]["missing_share_current"] == pytest.approx(0.3, abs=0.03)
