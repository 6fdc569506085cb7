"""``aiinfra prepare`` with typed features, through the real CLI: the type table, the contract and
the fitted preprocessing on disk, statistics from the train split only, regression, gaps
accepted, one clear error for an empty column; and data prepared before contracts existed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from aiinfra.data.features import CONTRACT, PREPROCESS, DataContract, FeatureTransform, FeatureType, Task
from aiinfra.data.prepared import PreparedData
from project_helpers import run_cli


def _csv(project, frame: pd.DataFrame) -> str:
    path = project / "data" / "raw" / "in.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return str(path.relative_to(project))


def test_prepare_penguins_prints_the_type_table_and_writes_the_contract(project):
    proc = run_cli(project, "prepare", "experiment=penguins", check=True)
    header = next(ln for ln in proc.stdout.splitlines() if ln.startswith("column"))
    assert header.replace(" ", "").split("|") == ["column", "type", "missing", "distinct", "example", "decision"]
    rows = {ln.split("|")[0].strip(): ln for ln in proc.stdout.splitlines() if "|" in ln}
    assert "categorical" in rows["island"] and "one-hot: 3 categories + __unknown__" in rows["island"]
    assert "sex__missing" in rows["sex"] and "multiclass: 3 classes" in rows["species"]
    assert "target 'species': categorical with 3 distinct values -> multiclass" in proc.stderr

    prepared = project / "data" / "prepared"
    meta = json.loads((prepared / "meta.json").read_text())
    assert meta["task"] == "multiclass" and meta["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    contract = DataContract.load(prepared)
    transform = FeatureTransform.load(prepared)
    assert meta["features"] == contract.features and meta["encoded_features"] == transform.output_names
    assert contract.column("sex").type == FeatureType.categorical and contract.column("sex").nullable

    data = PreparedData.open(prepared)
    x, y = data.arrays("train")
    assert x.shape == (meta["rows"]["train"], len(data.encoded_features)) and x.dtype == np.float32
    assert not np.isnan(x).any() and y.dtype == np.int64 and set(y.tolist()) == {0, 1, 2}
    assert data.task == Task.multiclass and not data.transform.is_identity


def test_prepare_cars_is_a_regression_without_stratification(project):
    proc = run_cli(project, "prepare", "experiment=cars_regression", check=True)
    assert "dropped 8 of 406 rows without a value in the target 'Miles_per_Gallon'" in proc.stderr
    data = PreparedData.open(project / "data" / "prepared")
    assert data.task == Task.regression and data.classes == [] and data.meta["classes"] == []
    assert data.contract.classes is None and data.contract.column("Year").type == FeatureType.datetime
    x, y = data.arrays("test")
    assert y.dtype == np.float32 and len(y) == data.meta["rows"]["test"] and x.shape[1] == len(data.encoded_features)
    assert sum(data.meta["rows"][s] for s in ("train", "val", "test")) == 398


def test_statistics_are_fitted_on_the_train_split_only(project):
    """The split comes before any fitting: a category that only val/test rows have is not in the
    vocabulary, and the imputation value is the median of the train rows."""
    n = 300
    rng = np.random.default_rng(3)
    colour = rng.choice(["red", "green", "blue"], n).astype(object)
    colour[rng.choice(n, 30, replace=False)] = [f"rare{i}" for i in range(30)]  # each in one row
    x = rng.normal(size=n)
    x[rng.choice(n, 25, replace=False)] = np.nan
    frame = pd.DataFrame({"x": x, "colour": colour, "label": rng.integers(0, 2, n)})
    path = _csv(project, frame)
    run_cli(project, "prepare", "source=csv", f"source.path={path}", "source.target=label", check=True)

    prepared = project / "data" / "prepared"
    train = pd.read_parquet(prepared / "train.parquet")
    rest = pd.concat([pd.read_parquet(prepared / f"{s}.parquet") for s in ("val", "test")])
    preprocess = json.loads((prepared / PREPROCESS).read_text())
    enc = {c["name"]: c for c in preprocess["columns"]}
    only_rest = set(rest["colour"]) - set(train["colour"])
    assert only_rest, "the seed puts some singleton categories outside train"
    assert set(enc["colour"]["categories"]) == set(train["colour"]) and not only_rest & set(enc["colour"]["categories"])
    assert enc["x"]["impute"] == pytest.approx(float(train["x"].median()))
    assert enc["x"]["impute"] != pytest.approx(float(frame["x"].median())) and enc["x"]["indicator"]
    contract = json.loads((prepared / CONTRACT).read_text())
    x_spec = next(c for c in contract["columns"] if c["name"] == "x")
    assert x_spec["null_share"] == pytest.approx(float(train["x"].isna().mean()), abs=1e-6)

    unseen: dict[str, int] = {}
    PreparedData.open(prepared).transform.transform(rest, unseen)
    assert unseen == {"colour": len(only_rest)}


def test_an_all_empty_column_is_one_error_with_the_fix(project):
    frame = pd.DataFrame({"a": np.arange(40) * 0.5, "empty": [None] * 40, "label": [0, 1] * 20})
    path = _csv(project, frame)
    args = ("prepare", "source=csv", f"source.path={path}", "source.target=label")
    proc = run_cli(project, *args)
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("aiinfra: error:")]
    assert errors == ["aiinfra: error: column 'empty' has no values in any row: there is nothing to learn from it."]
    assert "hint: leave it out: features.drop=[empty]" in proc.stderr and "Traceback" not in proc.stderr
    run_cli(project, *args, "features.drop=[empty]", check=True)


def test_data_prepared_before_contracts_still_reads(tmp_path):
    """No contract.json / preprocess.json, no task in meta.json: all-numeric classification with
    the identity transform (the arrays are the float columns, as before)."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=30), "b": rng.normal(size=30), "target": rng.integers(0, 3, 30)})
    frame.to_parquet(tmp_path / "train.parquet", index=False)
    (tmp_path / "meta.json").write_text(json.dumps({"features": ["a", "b"], "target": "target", "classes": [0, 1, 2]}))
    data = PreparedData.open(tmp_path)
    assert data.task == Task.multiclass and data.transform.is_identity and data.encoded_features == ["a", "b"]
    assert data.contract.features == ["a", "b"] and data.contract.column("a").type == FeatureType.numeric
    x, y = data.arrays("train")
    np.testing.assert_array_equal(x, frame[["a", "b"]].to_numpy(np.float32))
    np.testing.assert_array_equal(y, frame["target"].to_numpy())


def test_feedback_needs_only_the_columns_the_model_takes(tmp_path):
    """Production rows never carry a dropped column (an identifier): feedback without it is kept;
    feedback without a model input is skipped."""
    from types import SimpleNamespace

    from aiinfra.stages.prepare import read_feedback

    prepared, feedback = tmp_path / "prepared", tmp_path / "feedback"
    prepared.mkdir()
    feedback.mkdir()
    (prepared / CONTRACT).write_text(json.dumps({"dropped": {"row_id": "identifier: 9 distinct of 9"}}))
    pd.DataFrame({"a": [1.0, 2.0], "label": [0, None]}).to_parquet(feedback / "w1.parquet")
    pd.DataFrame({"row_id": [5], "label": [1]}).to_parquet(feedback / "w2.parquet")  # no 'a': skipped
    cfg = SimpleNamespace(
        paths=SimpleNamespace(feedback=str(feedback), prepared=str(prepared)), features=SimpleNamespace(drop=[])
    )
    rows = read_feedback(cfg, ["row_id", "a"], "label")
    assert rows.to_dict("list") == {"row_id": [None], "a": [1.0], "label": [0.0]}


def test_the_memory_engine_replaces_a_stream_engines_partitioned_output(project):
    """A prepared dir the stream engine wrote (train.parquet/ as a directory of parts) is
    rewritten by the memory engine in its flat layout, not refused with a traceback."""
    raw = project / "data" / "raw"
    raw.mkdir(parents=True)
    penguins = run_cli(project, "prepare", "experiment=penguins", "paths.prepared=data/mem")
    assert penguins.returncode == 0, penguins.stderr[-2000:]
    PreparedData.open(project / "data" / "mem").read("train").to_parquet(raw / "penguins.parquet", index=False)
    source = ("source=parquet", f"source.path={raw}", "source.target=species", "paths.prepared=data/p")
    assert run_cli(project, "prepare", "prepare.engine=stream", *source).returncode == 0
    assert (project / "data" / "p" / "train.parquet").is_dir()
    proc = run_cli(project, "prepare", *source)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    data = PreparedData.open(project / "data" / "p")
    assert not data.partitioned and (project / "data" / "p" / "train.parquet").is_file()
