"""Seeded drift scenarios for the monitor tests and ``bench/monitor_bench.py`` (numpy only).

Sixteen columns ``f00``..``f15`` like a model's features: thirteen continuous (normal, lognormal,
uniform, bimodal) and three low-cardinality codes (floats with 3-4 values, as a served model logs
an encoded category), so Evidently's automatic choice uses wasserstein, jensenshannon (and ks /
chisquare / z on a small reference).
"""

from __future__ import annotations

import numpy as np

SCENARIOS = ("no_drift", "mean_shift", "variance_shift", "category_shift", "missing_rising", "one_column")
N_COLUMNS = 16
CODES = {"f13": [0.3, 0.3, 0.4], "f14": [0.25, 0.25, 0.25, 0.25], "f15": [0.7, 0.3]}


def feature_names(n: int = N_COLUMNS) -> list[str]:
    return [f"f{i:02d}" for i in range(n)]


def _column(
    rng: np.random.Generator,
    name: str,
    rows: int,
    shift: float = 0.0,
    scale: float = 1.0,
    probs: list[float] | None = None,
) -> np.ndarray:
    if name in CODES:
        p = np.asarray(probs if probs is not None else CODES[name], dtype=float)
        return rng.choice(np.arange(len(p), dtype=np.float64), size=rows, p=p / p.sum())
    i = int(name[1:])
    kind = i % 4
    if kind == 0:
        base = rng.normal(0.0, 1.0, rows)
    elif kind == 1:
        base = rng.lognormal(0.0, 0.5, rows)
    elif kind == 2:
        base = rng.uniform(-2.0, 2.0, rows)
    else:
        base = np.where(rng.random(rows) < 0.5, rng.normal(-1.5, 0.5, rows), rng.normal(1.5, 0.5, rows))
    center = float(np.median(base)) if rows else 0.0
    return (base - center) * scale + center + shift


def make(scenario: str, rows: int, seed: int = 0, reference: bool = False) -> dict[str, np.ndarray]:
    """Columns of one side: ``reference=True`` is always the undrifted distribution."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {SCENARIOS}")
    rng = np.random.default_rng(seed)
    names = feature_names()
    cols: dict[str, np.ndarray] = {}
    for j, name in enumerate(names):
        s = "no_drift" if reference else scenario
        shift, scale, probs = 0.0, 1.0, None
        if s == "mean_shift" and j < 10 and name not in CODES:
            shift = 0.5  # half a standard deviation for most columns: clear drift
        elif s == "variance_shift" and j < 12 and name not in CODES:
            scale = 1.6
        elif s == "category_shift" and name in CODES:
            probs = {"f13": [0.1, 0.3, 0.6], "f14": [0.55, 0.15, 0.15, 0.15], "f15": [0.4, 0.6]}[name]
        elif s == "one_column" and j == 0:
            shift = 0.6
        col = _column(rng, name, rows, shift, scale, probs)
        if s == "missing_rising" and j < 12:
            # values go missing more often (30%) where they are large: what stays shifts too
            p_missing = np.where(col > np.median(col), 0.5, 0.1)
            col = np.where(rng.random(rows) < p_missing, np.nan, col)
        cols[name] = col
    return cols


def write_prediction_log(
    root,
    columns: dict[str, np.ndarray],
    start,
    hours: int = 1,
    rows_per_file: int = 100_000,
    model_name: str = "model",
    model_version: str = "1",
    prediction: np.ndarray | None = None,
    seed: int = 0,
) -> list[str]:
    """Write ``columns`` as the server's prediction log under ``root`` (the serving contract:
    ``date=YYYY-MM-DD/hour=HH/part-*.parquet`` with request_id, timestamp[us, UTC], model_name,
    model_version, the features as doubles, prediction, score), rows spread evenly over
    ``hours`` hourly partitions from ``start`` (a tz-aware datetime). Returns the files."""
    import datetime as dt
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    names = list(columns)
    rows = len(columns[names[0]]) if names else 0
    if prediction is None:
        prediction = (np.nan_to_num(columns[names[0]]) > 0).astype(np.int64) if names else np.zeros(rows, np.int64)
    start_us = int(start.timestamp() * 1_000_000)
    span_us = hours * 3600 * 1_000_000
    stamps = start_us + np.sort(rng.integers(0, span_us, rows))
    hour_of = (stamps - start_us) // (3600 * 1_000_000)
    files = []
    for h in range(hours):
        idx = np.flatnonzero(hour_of == h)
        when = start + dt.timedelta(hours=h)
        part = Path(root) / f"date={when:%Y-%m-%d}" / f"hour={when:%H}"
        part.mkdir(parents=True, exist_ok=True)
        for k in range(0, idx.size, rows_per_file):
            sel = idx[k : k + rows_per_file]
            table = pa.table(
                {
                    "request_id": pa.array([f"r{i}" for i in sel], pa.string()),
                    "timestamp": pa.array(stamps[sel], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                    "model_name": pa.array([model_name] * sel.size, pa.string()),
                    "model_version": pa.array([model_version] * sel.size, pa.string()),
                    **{n: pa.array(columns[n][sel], pa.float64()) for n in names},
                    "prediction": pa.array(prediction[sel]),
                    "score": pa.array(rng.uniform(0.5, 1.0, sel.size), pa.float64()),
                }
            )
            f = part / f"part-{when:%Y%m%dT%H}-{k // rows_per_file:05d}.parquet"
            pq.write_table(table, f)
            files.append(str(f))
    return files


def write_reference(
    prepared, columns: dict[str, np.ndarray], target: np.ndarray | None = None, target_name: str = "target"
) -> None:
    """``reference.parquet`` + ``meta.json`` as the prepare stage writes them."""
    import json
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(prepared)
    out.mkdir(parents=True, exist_ok=True)
    names = list(columns)
    rows = len(columns[names[0]])
    if target is None:
        target = (np.nan_to_num(columns[names[0]]) > 0).astype(np.int64)
    pq.write_table(
        pa.table({**{n: pa.array(columns[n], pa.float64()) for n in names}, target_name: target}),
        out / "reference.parquet",
    )
    meta = {
        "features": names,
        "target": target_name,
        "classes": sorted(np.unique(target).tolist()),
        "dataset_hash": "scenario",
        "rows": {"reference": rows},
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
