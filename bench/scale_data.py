"""The data of the scale benchmarks (bench/prepare_scale_bench.py, bench/monitor_scale_bench.py).

``table``: a mixed-type table as hive-partitioned Parquet, ``<dir>/part=NN/data.parquet``, one
file of ``rows_per_file`` rows per partition, 20 columns:

    id            int64, unique (the hash split's key)
    f0..f9        double; f0, f1, f2 with 5-10 % nulls
    i0..i2        int64 (counts, ages, a code)
    c0, c1, c2    string categories of cardinality 5, 50 and 1,000 (c2 with 2 % nulls)
    b0, b1        bool (b1 with 8 % nulls)
    target        int64 0/1, a logistic function of f0, f1, i0, c0 and b0 (learnable)

``prediction_log``: the same feature columns as the server writes them for a model with a data
contract (aiinfra/serving/predlog.py: numeric as double, boolean as bool, categorical as string,
gaps null) with request_id, timestamp, model_name, model_version, prediction and score, in
hourly ``date=YYYY-MM-DD/hour=HH/part-*.parquet`` partitions.

Both are deterministic (one seed per file) and generated one file at a time, so the generator
itself stays small in memory; a finished directory carries a ``_DONE`` marker and is reused.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROWS_PER_FILE = 500_000
ROW_GROUP = 100_000
CARDINALITY = {"c0": 5, "c1": 50, "c2": 1000}
NULL_SHARE = {"f0": 0.05, "f1": 0.08, "f2": 0.10, "c2": 0.02, "b1": 0.08}
FEATURES = [
    *(f"f{i}" for i in range(10)),
    "i0",
    "i1",
    "i2",
    *CARDINALITY,
    "b0",
    "b1",
]
DONE = "_DONE"


def _masked(values: np.ndarray, rng: np.random.Generator, share: float, kind=None) -> pa.Array:
    return pa.array(values, type=kind, mask=rng.random(values.size) < share)


def _features(rng: np.random.Generator, n: int, drift: float = 0.0) -> dict[str, pa.Array]:
    """The 18 feature columns (``drift`` shifts f0, f3 and c0's shares: a drifted log)."""
    cols: dict[str, pa.Array] = {}
    for i in range(10):
        mean = drift if i in (0, 3) else 0.0
        x = rng.normal(mean, 1.0 + 0.2 * i, n)
        name = f"f{i}"
        cols[name] = _masked(x, rng, NULL_SHARE[name]) if name in NULL_SHARE else pa.array(x)
    cols["i0"] = pa.array(rng.poisson(3.0, n).astype(np.int64))
    cols["i1"] = pa.array(rng.integers(18, 90, n, dtype=np.int64))
    cols["i2"] = pa.array(rng.integers(0, 10_000, n, dtype=np.int64))
    for name, k in CARDINALITY.items():
        # Zipf-like shares: a few common values and a long tail, as real categories have
        weights = 1.0 / np.arange(1, k + 1)
        if drift and name == "c0":
            weights = weights[::-1]
        codes = rng.choice(k, n, p=weights / weights.sum()).astype(np.int32)
        labels = pa.array([f"{name}_{j}" for j in range(k)])
        mask = rng.random(n) < NULL_SHARE[name] if name in NULL_SHARE else None
        cols[name] = pa.DictionaryArray.from_arrays(pa.array(codes, mask=mask), labels).cast(pa.string())
    cols["b0"] = pa.array(rng.random(n) < 0.3)
    cols["b1"] = _masked(rng.random(n) < 0.6, rng, NULL_SHARE["b1"], pa.bool_())
    return cols


def _target(cols: dict[str, pa.Array], rng: np.random.Generator) -> np.ndarray:
    f0 = np.nan_to_num(cols["f0"].to_numpy(zero_copy_only=False))
    f1 = np.nan_to_num(cols["f1"].to_numpy(zero_copy_only=False))
    i0 = cols["i0"].to_numpy()
    c0 = np.asarray(pa.compute.equal(cols["c0"], "c0_0").to_numpy(zero_copy_only=False))
    b0 = cols["b0"].to_numpy(zero_copy_only=False)
    logit = 1.2 * f0 - 0.8 * f1 + 0.3 * (i0 - 3) + 1.0 * c0 - 0.9 * b0 - 0.2
    return (rng.random(f0.size) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name)
    pq.write_table(table, tmp, row_group_size=ROW_GROUP, compression="snappy")
    tmp.rename(path)


def table(root: Path, rows: int, seed: int = 13, rows_per_file: int = ROWS_PER_FILE) -> Path:
    """The mixed-type table of ``rows`` rows under ``root`` (generated once; reused)."""
    import pyarrow.compute  # noqa: F401 - pa.compute in _target

    root = Path(root)
    if (root / DONE).is_file() and json.loads((root / DONE).read_text()) == {"rows": rows, "seed": seed}:
        return root
    shutil.rmtree(root, ignore_errors=True)
    files = -(-rows // rows_per_file)
    for k in range(files):
        n = min(rows_per_file, rows - k * rows_per_file)
        rng = np.random.default_rng([seed, k])
        cols = _features(rng, n)
        start = k * rows_per_file
        data = {"id": pa.array(np.arange(start, start + n, dtype=np.int64)), **cols, "target": _target(cols, rng)}
        _write(pa.table(data), root / f"part={k:02d}" / "data.parquet")
    (root / DONE).write_text(json.dumps({"rows": rows, "seed": seed}))
    return root


def prediction_log(
    root: Path,
    rows: int,
    hours: int = 24,
    seed: int = 29,
    drift: float = 0.5,
    rows_per_file: int = 100_000,
    start: dt.datetime = dt.datetime(2026, 11, 27, tzinfo=dt.UTC),
) -> Path:
    """A prediction log of ``rows`` rows spread over ``hours`` hourly partitions (generated once)."""
    import pyarrow.compute  # noqa: F401 - pa.compute in _target

    root = Path(root)
    want = {"rows": rows, "hours": hours, "seed": seed, "drift": drift}
    if (root / DONE).is_file() and json.loads((root / DONE).read_text()) == want:
        return root
    shutil.rmtree(root, ignore_errors=True)
    per_hour = -(-rows // hours)
    written = 0
    for h in range(hours):
        when = start + dt.timedelta(hours=h)
        hour_rows = min(per_hour, rows - written)
        for k in range(0, hour_rows, rows_per_file):
            n = min(rows_per_file, hour_rows - k)
            rng = np.random.default_rng([seed, h, k])
            cols = _features(rng, n, drift=drift if h >= hours // 2 else 0.0)  # the second half drifts
            label = _target(cols, rng)
            base = int(when.timestamp() * 1_000_000)
            stamps = base + np.sort(rng.integers(0, 3_600_000_000, n))
            ids = pa.array(np.char.add("r", np.arange(written + k, written + k + n).astype(str)))
            data = {
                "request_id": ids,
                "timestamp": pa.array(stamps, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                "model_name": pa.array(np.full(n, "scale")),
                "model_version": pa.array(np.full(n, "1")),
                **cols,
                "prediction": pa.array(label),
                "score": pa.array(rng.uniform(0.5, 1.0, n)),
            }
            part = (
                root
                / f"date={when:%Y-%m-%d}"
                / f"hour={when:%H}"
                / f"part-{when:%Y%m%dT%H}-{k // rows_per_file:05d}.parquet"
            )
            _write(pa.table(data), part)
        written += hour_rows
    (root / DONE).write_text(json.dumps(want))
    return root


if __name__ == "__main__":
    import argparse
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/aiinfra-scale/table-1000000"))
    parser.add_argument("--log", action="store_true", help="a prediction log instead of the table")
    args = parser.parse_args()
    t0 = time.perf_counter()
    (prediction_log if args.log else table)(args.out, args.rows)
    print(f"{args.out}: {args.rows:,} rows in {time.perf_counter() - t0:.1f} s")
