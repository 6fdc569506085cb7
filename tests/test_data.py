"""prepare: schema validation of source data and deterministic splits."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from project_helpers import run_cli


def _csv(project, frame: pd.DataFrame) -> str:
    path = project / "data" / "raw" / "in.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return str(path.relative_to(project))


def _frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "label": rng.integers(0, 2, n)})


@pytest.mark.parametrize(
    "mutate, overrides, expected",
    [
        (
            lambda f: f.drop(columns=["b"]),
            ["+source.columns={a: float, b: float}"],
            "column 'b' declared in source.columns is missing",
        ),
        (
            lambda f: f.assign(b=["x"] * len(f)),
            ["+source.columns={a: float, b: float}"],
            "column 'b' should be float but is object (row 0: 'x')",
        ),
        (
            lambda f: f.assign(a=[np.nan] + [1.0] * (len(f) - 1)),
            [],
            "column 'a' has 1 missing value(s) (NaN), first at row 0",
        ),
        (lambda f: f.rename(columns={"label": "lable"}), [], "target column 'label' is missing"),
    ],
    ids=["missing-column", "wrong-type", "nan", "missing-target"],
)
def test_bad_source_data_names_the_column(project, mutate, overrides, expected):
    path = _csv(project, mutate(_frame()))
    proc = run_cli(project, "prepare", "source=csv", f"source.path={path}", "source.target=label", *overrides)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr and "hint:" in proc.stderr and "Traceback" not in proc.stderr


def test_allow_nan_lets_declared_columns_through(project):
    frame = _frame()
    frame.loc[3, "a"] = np.nan
    path = _csv(project, frame)
    run_cli(
        project,
        "prepare",
        "source=csv",
        f"source.path={path}",
        "source.target=label",
        "source.allow_nan=[a]",
        check=True,
    )


def test_split_is_deterministic_by_seed_and_disjoint(project):
    run_cli(project, "prepare", check=True)
    prepared = project / "data" / "prepared"
    meta = json.loads((prepared / "meta.json").read_text())
    first = {s: pd.read_parquet(prepared / f"{s}.parquet") for s in ("train", "val", "test")}
    assert sum(len(f) for f in first.values()) == 569  # breast cancer, every row once
    assert meta["rows"]["reference"] == len(first["train"]) and meta["target"] == "target"
    keys = {s: set(map(tuple, f.round(6).to_numpy().tolist())) for s, f in first.items()}
    assert not (keys["train"] & keys["test"]) and not (keys["val"] & keys["test"])

    run_cli(project, "prepare", check=True)
    assert json.loads((prepared / "meta.json").read_text())["dataset_hash"] == meta["dataset_hash"]
    pd.testing.assert_frame_equal(pd.read_parquet(prepared / "test.parquet"), first["test"])

    run_cli(project, "prepare", "seed=7", check=True)
    assert not pd.read_parquet(prepared / "test.parquet").equals(first["test"])
