"""The monitor on raw typed columns with a data contract (issue 12): drift per contract type,
unseen-category and missing shares per window with their thresholds, regression prediction drift
and MAE/RMSE from feedback labels, and the charts' axes.

The reference, ``meta.json`` and ``contract.json`` are written as ``prepare`` writes them (the
contract by :func:`aiinfra.data.features.infer_contract` on the frame); the prediction log is
built by hand in the server's layout, with the raw columns as the server logs them (strings,
booleans, timestamps, nulls)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from aiinfra.data.features import FeaturesConfig, FeatureType, Task, infer_contract
from aiinfra.monitoring import charts, history, typed_columns
from aiinfra.monitoring.drift_monitor import exit_code, run_once
from monhelpers import cfg_with

DAY = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
TYPES = {
    "city": FeatureType.categorical,
    "flag": FeatureType.boolean,
    "x": FeatureType.numeric,
    "when": FeatureType.datetime,
    "note": FeatureType.text,
    "stars": FeatureType.numeric,  # few values: Evidently's auto rule gives it a categorical test
}
WORDS = np.array(["late", "parcel", "refund", "great", "broken", "fast", "again", "never"])


def rows(n, seed, city_p=(0.5, 0.3, 0.2), flag_p=0.3, x_null=0.0, unseen=0.0, regression=False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    city = rng.choice(["north", "south", "east"], n, p=city_p).astype(object)
    city[rng.random(n) < unseen] = "atlantis"  # a category training never saw
    flag = rng.random(n) < flag_p
    x = rng.normal(0.0, 1.0, n)
    when = pd.Timestamp("2026-09-01") + pd.to_timedelta(rng.integers(0, 60 * 24, n), unit="h")
    note = [" ".join(rng.choice(WORDS, k)) for k in rng.integers(1, 9, n)]
    y = 3.0 * x + flag + rng.normal(0, 0.3, n) if regression else ((x + flag) > 0.5).astype(np.int64)
    stars = rng.integers(1, 6, n)
    frame = pd.DataFrame({"city": city, "flag": flag, "x": x, "when": when, "note": note, "stars": stars, "y": y})
    frame.loc[rng.random(n) < x_null, "x"] = np.nan
    return frame


def prepare(mon, reference: pd.DataFrame, regression: bool = False) -> None:
    """reference.parquet (raw columns, dates as ISO strings as a CSV gives them), meta.json and
    contract.json, as ``prepare`` writes them."""
    out = mon.prepared
    out.mkdir(parents=True, exist_ok=True)
    raw = reference.assign(when=reference["when"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    raw.to_parquet(out / "reference.parquet", index=False)
    features = FeaturesConfig(types=dict(TYPES), task=Task.regression if regression else Task.auto)
    contract = infer_contract(raw, SimpleNamespace(target="y", columns=None), features, raw.index)
    contract.save(out)
    meta = {
        "features": contract.features,
        "target": "y",
        "classes": [] if regression else [0, 1],
        "task": str(contract.task),
        "dataset_hash": "typed",
        "rows": {"reference": len(raw)},
    }
    (out / "meta.json").write_text(json.dumps(meta))


def log_hour(mon, frame: pd.DataFrame, hour: int, prediction, prefix: str) -> None:
    """One hour of the prediction log: the raw columns as the server logs them."""
    when = DAY + dt.timedelta(hours=hour)
    part = mon.logs / f"date={when:%Y-%m-%d}" / f"hour={when:%H}"
    part.mkdir(parents=True, exist_ok=True)
    n = len(frame)
    table = pa.table(
        {
            "request_id": [f"{prefix}{i}" for i in range(n)],
            "timestamp": pa.array([when + dt.timedelta(seconds=i) for i in range(n)], pa.timestamp("us", "UTC")),
            "model_name": ["m"] * n,
            "model_version": ["1"] * n,
            "city": pa.array(frame["city"].tolist(), pa.string()),
            "flag": pa.array(frame["flag"].tolist(), pa.bool_()),
            "x": pa.array(frame["x"].to_numpy(), pa.float64(), from_pandas=True),
            "when": pa.array(frame["when"].to_numpy(), pa.timestamp("us")),
            "note": pa.array(frame["note"].tolist(), pa.string()),
            "stars": pa.array(frame["stars"].to_numpy(), pa.int64()),
            "prediction": pa.array(np.asarray(prediction)),
            "score": pa.array(np.full(n, 0.9)),
        }
    )
    pq.write_table(table, part / "part-0.parquet")


def window(hour: int) -> list[str]:
    start = DAY + dt.timedelta(hours=hour)
    return [f"monitor.window.start={start:%Y-%m-%dT%H:%M:%S}", f"monitor.window.end={start:%Y-%m-%dT%H}:59:59"]


def test_categorical_drift_on_a_shifted_category_mix_and_not_on_the_same_mix(mon, aiinfra_plugin_manager):
    prepare(mon, rows(3000, seed=1))
    same, shifted = rows(2000, seed=2), rows(2000, seed=3, city_p=(0.2, 0.3, 0.5), flag_p=0.6)
    log_hour(mon, same, 10, same["flag"].astype(np.int64), "a")
    log_hour(mon, shifted, 11, shifted["flag"].astype(np.int64), "b")

    calm = run_once(mon.cfg("monitor.report=false", *window(10)))
    cols = calm["columns"]
    assert {c: cols[c]["compared_as"] for c in TYPES} == {
        "city": "categories",
        "flag": "categories",
        "x": "values",
        "when": "epoch",
        "note": "length",
        "stars": "values",
    }
    assert {c: cols[c]["feature_type"] for c in TYPES} == {c: str(t) for c, t in TYPES.items()}
    # a reference of 3000 rows: Evidently's auto rule gives categories Jensen-Shannon, numbers Wasserstein
    assert cols["city"]["method"] == "jensenshannon" and cols["when"]["method"] == "wasserstein"
    assert not any(c["drifted"] for c in cols.values()), {c: v["score"] for c, v in cols.items()}
    assert calm["breaches"] == [] and calm["alert"] is False and calm["task"] == "binary"

    moved = run_once(mon.cfg("monitor.report=false", *window(11)))
    drifted = {c for c, v in moved["columns"].items() if v["drifted"]}
    assert drifted == {"city", "flag"}, {c: v["score"] for c, v in moved["columns"].items()}
    assert moved["columns"]["city"]["score"] > 0.1 > calm["columns"]["city"]["score"]
    # booleans logged as true/false match the contract's keys: nothing is "unseen"
    assert moved["columns"]["flag"]["unseen_share_current"] == 0.0
    assert moved["prediction"]["type"] == "categorical" and moved["prediction"]["compared_as"] == "labels"


def test_datetime_and_text_columns_can_be_skipped_with_the_reason_in_the_verdict(mon, aiinfra_plugin_manager):
    prepare(mon, rows(1500, seed=1))
    cur = rows(800, seed=2)
    cur.loc[:89, "note"] = None  # the missing share of a skipped column is still reported
    cur.loc[90:99, "note"] = "  "  # blank: missing, as the contract counts it
    log_hour(mon, cur, 10, cur["flag"].astype(np.int64), "a")
    verdict = run_once(mon.cfg("monitor.report=false", "monitor.datetime=skip", "monitor.text=skip"))
    assert verdict["skipped_columns"] == {
        "when": "datetime column, monitor.datetime=skip",
        "note": "text column, monitor.text=skip",
    }
    assert verdict["columns_total"] == 4 and verdict["columns"]["note"]["counted"] is False
    assert verdict["columns"]["note"]["missing_share_current"] == 100 / 800


def test_unseen_and_missing_shares_per_window_breach_their_thresholds_and_alert(mon, aiinfra_plugin_manager):
    prepare(mon, rows(3000, seed=1))
    clean, broken = rows(1000, seed=2), rows(1000, seed=3, unseen=0.3, x_null=0.4)
    log_hour(mon, clean, 10, clean["flag"].astype(np.int64), "a")
    log_hour(mon, broken, 11, broken["flag"].astype(np.int64), "b")
    alerts = mon.root / "alerts.jsonl"
    sinks = [f"monitor.alerts=[{{type: file, path: {alerts}}}]"]

    first = run_once(mon.cfg("monitor.report=false", *sinks, *window(10)))
    assert first["columns"]["city"]["unseen_share_current"] == 0.0
    assert first["columns"]["x"]["missing_share_current"] == 0.0 and first["columns"]["x"]["null_share_train"] == 0.0
    assert first["breaches"] == [] and not alerts.exists()

    cfg = mon.cfg("monitor.report=false", *sinks, *window(11))
    second = run_once(cfg)
    unseen = float((broken["city"] == "atlantis").mean())
    missing = float(broken["x"].isna().mean())
    city, x = second["columns"]["city"], second["columns"]["x"]
    assert city["unseen_share_current"] == unseen and 0.25 < unseen < 0.35
    assert city["unseen_values"] == {"atlantis": int((broken["city"] == "atlantis").sum())}
    assert city["unseen_share_reference"] == 0.0  # the reference's categories are the contract's
    assert x["missing_share_current"] == missing
    found = {(b["check"], b["column"]): b for b in second["breaches"]}
    assert set(found) == {("unseen_share", "city"), ("null_increase", "x")}
    assert found[("null_increase", "x")]["value"] == missing and found[("unseen_share", "city")]["threshold"] == 0.1
    assert "'atlantis'" in found[("unseen_share", "city")]["message"]
    # a breach alerts as drift does: the sinks ran, and the exit status is 1
    assert second["alert"] is True and exit_code(second, cfg) == 1
    assert [a["ok"] for a in second["alerts"]] == [True] and len(alerts.read_text().splitlines()) == 1
    # per window over time: the history and the chart hold both runs' shares
    runs = history.load(mon.reports / history.HISTORY)
    assert [r["columns"]["city"]["unseen_share_current"] for r in runs] == [0.0, unseen]
    figures = {f["id"]: f for f in charts.read_figures(mon.reports / history.PLOT)}
    traces = figures["unseen_share"]["data"]
    assert [t["name"] for t in traces] == ["city", "monitor.max_unseen_share"] and traces[0]["y"] == [0.0, unseen]
    assert figures["unseen_share"]["layout"]["yaxis"]["range"] == [0.0, 1.0]
    assert [t["name"] for t in figures["missing_share"]["data"]] == ["x"]
    prom = (mon.reports / "drift.prom").read_text()
    assert f'aiinfra_drift_column_unseen_share{{column="city"}} {unseen!r}' in prom
    assert "aiinfra_monitor_breaches 2.0" in prom

    # the thresholds can be switched off
    quiet = run_once(cfg_with(cfg, max_unseen_share=None, max_null_increase=None))
    assert quiet["breaches"] == [] and quiet["alert"] is False


def test_regression_prediction_drift_and_mae_rmse_from_feedback(mon, tmp_path, aiinfra_plugin_manager):
    prepare(mon, rows(3000, seed=1, regression=True), regression=True)
    good, bad = rows(1000, seed=2, regression=True), rows(1000, seed=3, regression=True)
    rng = np.random.default_rng(0)
    good_pred = good["y"].to_numpy() + rng.normal(0, 0.4, 1000)
    bad_pred = bad["y"].to_numpy() + 3.0  # a model whose values moved up by 3 target units
    log_hour(mon, good, 10, good_pred, "a")
    log_hour(mon, bad, 11, bad_pred, "b")
    labels = pd.DataFrame(
        {
            "request_id": [f"a{i}" for i in range(1000)] + [f"b{i}" for i in range(600)],
            "y": np.concatenate([good["y"].to_numpy(), bad["y"].to_numpy()[:600]]),
        }
    )
    labels.to_parquet(tmp_path / "labels.parquet")
    marker = tmp_path / "retrained"
    command = [sys.executable, "-c", f"import pathlib; pathlib.Path({str(marker)!r}).write_text('x')"]
    retrain = {"policy": "retrain", "command": command, "timeout_s": 60, "export_window": False}

    def cfg(hour):
        feedback = f"monitor.feedback={tmp_path / 'labels.parquet'}"
        return cfg_with(
            mon.cfg("monitor.report=false", feedback, *window(hour)), max_mae=1.0, max_rmse=1.0, retrain=retrain
        )

    calm = run_once(cfg(10))
    assert calm["task"] == "regression"
    assert calm["prediction"]["type"] == "numerical" and calm["prediction"]["compared_as"] == "values"
    assert calm["prediction"]["method"] == "wasserstein" and calm["prediction"]["drifted"] is False
    fb = calm["feedback"]
    err = good_pred - good["y"].to_numpy()
    assert fb["accuracy"] is None and fb["labelled_rows"] == 1000
    assert abs(fb["mae"] - np.mean(np.abs(err))) < 1e-9 and abs(fb["rmse"] - np.sqrt(np.mean(err**2))) < 1e-9
    assert fb["target"]["type"] == "numerical" and fb["target"]["drifted"] is False
    assert calm["breaches"] == [] and "retrain" not in calm and not marker.exists()

    moved = run_once(cfg(11))
    assert moved["prediction"]["drifted"] is True and moved["prediction"]["score"] > 0.5
    assert moved["feedback"]["labelled_rows"] == 600
    assert abs(moved["feedback"]["mae"] - 3.0) < 1e-9 and abs(moved["feedback"]["rmse"] - 3.0) < 1e-9
    assert {b["check"] for b in moved["breaches"]} == {"mae", "rmse"}
    # a quality breach retrains under policy=retrain, as drift does
    assert moved["retrain"]["ok"] is True and marker.exists()
    prom = (mon.reports / "drift.prom").read_text()
    assert f"aiinfra_feedback_mae {moved['feedback']['mae']!r}" in prom

    figures = {f["id"]: f for f in charts.read_figures(mon.reports / history.PLOT)}
    error = figures["regression_error"]
    metrics = [t for t in error["data"] if t["meta"]["role"] == "metric"]
    assert [t["name"] for t in metrics] == ["MAE", "RMSE"]
    low, high = error["layout"]["yaxis"]["range"]
    assert low == 0.0 and high >= max(v for t in metrics for v in t["y"])
    assert "accuracy" not in figures


def test_quality_waits_for_enough_labelled_rows(mon, tmp_path, aiinfra_plugin_manager):
    prepare(mon, rows(1200, seed=1, regression=True), regression=True)
    cur = rows(400, seed=2, regression=True)
    log_hour(mon, cur, 10, cur["y"].to_numpy() + 5.0, "a")
    pd.DataFrame({"request_id": [f"a{i}" for i in range(10)], "y": cur["y"][:10]}).to_parquet(tmp_path / "l.parquet")
    cfg = mon.cfg("monitor.report=false", f"monitor.feedback={tmp_path / 'l.parquet'}", "monitor.max_mae=1")
    verdict = run_once(cfg)
    assert verdict["feedback"]["mae"] > 4 and verdict["breaches"] == []  # 10 labels < min_labelled_rows=30
    assert [b["check"] for b in run_once(cfg_with(cfg, min_labelled_rows=10))["breaches"]] == ["mae"]


def test_without_a_contract_the_verdict_is_as_before(mon, tmp_path, aiinfra_plugin_manager):
    mon.reference(rows=1500)
    cur = pd.read_parquet(mon.prepared / "reference.parquet").drop(columns=["target"])
    cur.loc[: len(cur) // 2, "f00"] = np.nan  # half missing: no null threshold without a contract
    cur.to_parquet(tmp_path / "cur.parquet")
    verdict = run_once(mon.cfg("monitor.report=false", f"monitor.current={tmp_path / 'cur.parquet'}"))
    assert verdict["contract"] is None and verdict["breaches"] == []
    assert verdict["columns"]["f00"]["missing_share_current"] > 0.49
    assert not any("feature_type" in c or "role" in c for c in verdict["columns"].values())


def test_the_chart_axes_fit_what_they_show(tmp_path):
    """Accuracy spans exactly [0, 1] (the old page ran it to 1.47), errors start at 0, one trace per
    metric, values in the hover text and not written over the points, plotly.js inlined."""
    base = {"drift_share": 0.2, "threshold": 0.5, "columns": {}, "rows": {"current": 10}}
    for i, (acc, mae) in enumerate([(0.93, 1.5), (1.0, 0.4), (0.97, 2.5)]):
        verdict = {
            **base,
            "finished": f"2026-11-28T1{i}:00:00+00:00",
            "drift_detected": i == 2,
            "feedback": {"labelled_rows": 50, "accuracy": acc, "mae": mae, "rmse": mae * 1.2},
            "thresholds": {"min_accuracy": 0.9, "max_mae": 2.0},
        }
        history.append(tmp_path, verdict)
    path = history.render(tmp_path / history.HISTORY)
    figures = {f["id"]: f for f in charts.read_figures(path)}
    for key in ("drift_share", "accuracy"):
        assert figures[key]["layout"]["yaxis"]["range"] == [0.0, 1.0]
        assert all(0.0 <= v <= 1.0 for t in figures[key]["data"] for v in t["y"])
    accuracy = figures["accuracy"]["data"]
    assert [(t["name"], t["meta"]["role"]) for t in accuracy] == [
        ("accuracy", "metric"),
        ("monitor.min_accuracy", "threshold"),
    ]
    assert accuracy[0]["x"][0] == "2026-11-28 10:00:00"  # a date axis plotly reads (UTC, no offset)
    error = figures["regression_error"]
    assert [t["name"] for t in error["data"]] == ["MAE", "RMSE", "monitor.max_mae"]
    assert error["layout"]["yaxis"]["range"][0] == 0.0 and error["layout"]["yaxis"]["range"][1] >= 3.0
    assert all("text" not in t["mode"] for f in figures.values() for t in f["data"])
    assert figures["drift_share"]["data"][0]["marker"]["color"][2] == "#d62728"  # the drifted run in red
    import plotly.graph_objects as go

    for f in figures.values():  # plotly's own validators: every property is one plotly.js knows
        go.Figure(data=f["data"], layout=f["layout"])
    page = path.read_text()
    js = charts.plotly_js()
    assert js and js in page and "<script src=" not in page
    assert "http" not in page.replace(js, "")  # nothing fetched: the page's own markup names no URL


def test_canonical_categories_match_the_contracts_keys():
    import pyarrow as pa

    assert typed_columns.categories(pa.array([True, None, False]), boolean=True).to_pylist() == ["true", None, "false"]
    assert typed_columns.categories(pa.array(["Yes", "0", " "]), boolean=True).to_pylist() == ["true", "false", None]
    assert typed_columns.categories(pa.array([3.0, 4.5])).to_pylist() == ["3", "4.5"]
    assert typed_columns.epoch_seconds(pa.array(["1970-01-02", "nope"])).to_pylist() == [86400.0, None]
    assert typed_columns.text_length(pa.array(["ab c", "", None])).to_pylist() == [4.0, None, None]
    assert Path(typed_columns.CONTRACT_FILE).name == "contract.json"


def test_evidently_report_renders_the_typed_columns_as_the_verdict_compared_them(mon, evidently_loaded):
    """The report gets the converted columns (categories as strings, dates as epoch seconds, text
    as lengths, a regression's values as numbers): Evidently runs on them without an error."""
    from aiinfra.monitoring import engine, report, windows

    prepare(mon, rows(600, seed=1, regression=True), regression=True)
    cur = rows(300, seed=2, regression=True)
    log_hour(mon, cur, 10, cur["y"].to_numpy() + 0.1, "a")
    cfg = mon.cfg("monitor.report_sample_rows=300")
    ref = engine.load_reference(cfg.paths.prepared)
    current = windows.open_current(cfg)
    result = engine.run(cfg.monitor, ref, current, engine.plan_columns(cfg.monitor, ref, current))
    written = report.render(
        sample_current=result.sample_current,
        reference=ref.table,
        results=result.columns,
        drift_share=0.5,
        html_path=None,
        json_path=mon.root / "report.json",
        sample_rows=300,
    )
    text = (mon.root / "report.json").read_text()
    assert written["rows_current"] == 300 and "when" in text and "prediction" in text
    # a numeric column with five values got chisquare (Evidently's auto rule on <= 1000 rows); named
    # explicitly Evidently refuses it on a numerical column, so the report declares it categorical
    assert next(c for c in result.columns if c["column"] == "stars")["method"] == "chisquare"
    assert "stars" in text
