"""The Evidently report: skipping the plots DataDriftPreset discards leaves the report unchanged."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa

import drift_scenarios as scenarios
from aiinfra.monitoring import report, stats
from aiinfra.monitoring.engine import ColumnPlan, as_labels, judge_column, summarize

# Evidently names every widget and metric with a fresh uuid (with or without dashes): the only
# bytes that differ between two renders of the same data.
_IDS = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")


def _inputs(rows: int = 3000):
    ref = scenarios.make("mean_shift", rows, seed=1, reference=True)
    cur = scenarios.make("mean_shift", rows, seed=2)
    names = list(ref)[:6]
    # a prediction column shown as its own ValueDrift (not part of the preset): it must keep its plots
    rng = np.random.default_rng(0)
    ref_t = pa.table({**{n: ref[n] for n in names}, "label": rng.integers(0, 2, rows)})
    cur_t = pa.table({**{n: cur[n] for n in names}, "prediction": rng.integers(0, 2, rows)})
    plans = [ColumnPlan(n, n, stats.NUMERICAL, None, None) for n in names]
    plans.append(ColumnPlan("prediction", "label", stats.CATEGORICAL, None, None, counted=False))
    results = []
    for p in plans:
        rc, cc = ref_t.column(p.ref_name), cur_t.column(p.name)
        if p.name != p.ref_name:
            rc, cc = as_labels(rc), as_labels(cc)
        results.append(judge_column(p, summarize(rc, p.kind), summarize(cc, p.kind)))
    return ref_t, cur_t, results


def _render(tmp_path, name, skip):
    ref_t, cur_t, results = _inputs()
    html, js = tmp_path / f"{name}.html", tmp_path / f"{name}.json"
    report.render(
        sample_current=cur_t,
        reference=ref_t,
        results=results,
        drift_share=0.5,
        html_path=html,
        json_path=js,
        sample_rows=0,
        skip_discarded_plots=skip,
    )
    return _IDS.sub("ID", html.read_text()), _IDS.sub("ID", js.read_text())


def test_skipping_the_discarded_plots_changes_nothing_in_html_or_json(tmp_path, evidently_loaded):
    drawn_html, drawn_json = _render(tmp_path, "drawn", skip=False)
    skipped_html, skipped_json = _render(tmp_path, "skipped", skip=True)
    assert skipped_json == drawn_json
    assert skipped_html == drawn_html
    # the report does show the preset's table and the prediction's own ValueDrift widget
    snapshot = json.loads(drawn_json)
    assert any(str(m.get("config", {}).get("column")) == "prediction" for m in snapshot["metrics"])
    assert "Drift in column 'prediction'" in drawn_html


def test_the_skip_is_active_only_inside_the_report_and_only_for_preset_columns(evidently_loaded):
    from evidently.metrics.column_statistics import ValueDriftCalculation

    original = ValueDriftCalculation.__dict__["_render"]

    class Fake:  # stands for a ValueDriftCalculation: only .metric.column is read
        def __init__(self, column):
            self.metric = type("M", (), {"column": column})()

    with report._skip_discarded_plots(["f00"]):
        patched = ValueDriftCalculation.__dict__["_render"]
        assert patched is not original  # else the render above proved nothing
        assert patched(Fake("f00"), None) == []  # a preset column: not drawn
    assert ValueDriftCalculation.__dict__["_render"] is original  # restored
