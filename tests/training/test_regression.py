"""Regression end to end through the real CLI: prepare -> train -> evaluate -> register on the cars
table (a continuous target, strings, a date, gaps), the model directory and the MLflow model on
raw rows, the loss choice and its rule against the task."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from project_helpers import cli_env, project_client, run_cli

SHORT = ("trainer.max_epochs=3", "trainer.checkpoint.enabled=false", "trainer.early_stopping.enabled=false")

#: loads the MLflow model in a fresh process (as a user would) and predicts raw rows read from a file
PYFUNC = """
import json, sys, pandas as pd, mlflow
mlflow.set_tracking_uri(sys.argv[2])
m = mlflow.pyfunc.load_model(sys.argv[1])
rows = pd.read_parquet(sys.argv[3])
out = m.predict(rows)
print("SIGNATURE", json.dumps({c["name"]: c["type"] for c in m.metadata.signature.inputs.to_dict()}))
print("PRED", json.dumps([float(v) for v in out]))
"""


def _pyfunc_predict(project, uri: str, rows: pd.DataFrame) -> tuple[dict[str, str], np.ndarray]:
    path = project / "raw_rows.parquet"
    rows.to_parquet(path)
    proc = subprocess.run(
        [sys.executable, "-c", PYFUNC, uri, f"sqlite:///{project / 'mlflow.db'}", str(path)],
        cwd=project,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {ln.split(" ", 1)[0]: ln.split(" ", 1)[1] for ln in proc.stdout.splitlines() if " " in ln}
    return json.loads(lines["SIGNATURE"]), np.asarray(json.loads(lines["PRED"]))


def test_cars_regression_end_to_end_predicts_raw_rows(project):
    run_cli(project, "prepare", "experiment=cars_regression", check=True)
    trained = run_cli(project, "train", "experiment=cars_regression", *SHORT, check=True)
    summary = json.loads((project / "models" / "train_run.json").read_text())
    assert summary["task"] == "regression" and summary["loss"] == "mse", summary
    for key in ("val_rmse", "val_mae", "val_r2", "val_loss", "train_loss"):
        assert np.isfinite(summary["metrics"][key]), (key, summary["metrics"])
    assert "val_acc" not in summary["metrics"]
    assert "val_rmse=" in trained.stderr  # the per-epoch progress line has the regression metrics

    run_cli(project, "evaluate", "experiment=cars_regression", check=True)
    metrics = json.loads((project / "metrics.json").read_text())
    # the flat test metrics, and the stages' resources in their own section (docs/costs.md)
    assert set(metrics) == {"test_rmse", "test_mae", "test_r2", "test_rows", "resources"}, metrics
    # miles per gallon spans ~9-47 (std ~7.8): a model that learned something is well under it
    assert 0 < metrics["test_rmse"] < 7.0 and metrics["test_r2"] > 0.3, metrics
    predicted = pd.read_csv(project / "plots" / "predicted.csv")
    assert len(predicted) == metrics["test_rows"] and list(predicted.columns) == ["actual", "predicted"]
    residuals = pd.read_csv(project / "plots" / "residuals.csv")
    np.testing.assert_allclose(residuals["residual"], predicted["actual"] - predicted["predicted"], atol=1e-5)
    assert pd.read_csv(project / "plots" / "confusion.csv").empty  # declared in dvc.yaml: header only

    # the project's gate (test_accuracy) is not a regression metric: one error naming the ones there are
    refused = run_cli(project, "register", "source=cars")
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "register.gate.metric='test_accuracy' is not a metric of this regression model's evaluation" in (
        refused.stderr
    )
    assert "test_mae, test_r2, test_rmse" in refused.stderr and "Traceback" not in refused.stderr
    registered = run_cli(project, "register", "experiment=cars_regression", check=True)
    assert "test_rmse=" in registered.stderr and "passes" in registered.stderr, registered.stderr[-2000:]
    result = json.loads((project / "models" / "registration.json").read_text())
    assert result["alias_moved"] and result["version"] == "1", result
    version = project_client(project).get_model_version(result["model_name"], "1")
    assert float(version.tags["aiinfra.metric.test_rmse"]) == pytest.approx(metrics["test_rmse"])

    # the model directory: task, encoded features, the target's train statistics, contract, preprocessing
    from aiinfra.models.model_dir import Predictor

    model_dir = project / "models" / "model"
    assert (model_dir / "contract.json").is_file() and (model_dir / "preprocess.json").is_file()
    meta = json.loads((model_dir / "model.json").read_text())
    train = pd.read_parquet(project / "data" / "prepared" / "train.parquet")
    assert meta["task"] == "regression" and meta["classes"] == []
    assert meta["target_mean"] == pytest.approx(train["Miles_per_Gallon"].mean(), rel=1e-6)
    assert meta["target_std"] == pytest.approx(train["Miles_per_Gallon"].std(ddof=0), rel=1e-6)
    assert "Origin=USA" in meta["encoded_features"] and len(meta["encoded_features"]) > len(meta["features"])

    predictor = Predictor.load(model_dir)
    assert predictor.task == "regression" and predictor.classes == []
    raw = pd.read_parquet(project / "data" / "prepared" / "test.parquet")[predictor.features]
    raw.loc[0, "Horsepower"] = np.nan  # a gap in a request: imputed as in training
    values = predictor.predict_values(predictor.encode(predictor.contract.check_frame(raw)))
    assert values.dtype == np.float64 and np.isfinite(values).all()
    # target units: the same predictions evaluate wrote (row 0 aside: its gap is new)
    np.testing.assert_allclose(values[1:], predicted["predicted"].to_numpy()[1:], atol=1e-4)

    # the MLflow model takes the same raw rows (strings, date strings, the gap) and agrees
    signature, served = _pyfunc_predict(project, summary["model_uri"], raw)
    assert signature["Origin"] == "string" and signature["Name"] == "string", signature
    assert signature["Year"] == "datetime" and signature["Horsepower"] == "double", signature
    assert signature["Cylinders"] == "long", signature  # stored as integers: MLflow refuses int64 for double
    np.testing.assert_allclose(served, values, rtol=1e-6, atol=1e-6)


def _table(rows: int = 240, seed: int = 0) -> pd.DataFrame:
    """A continuous target from a number, a category (with gaps), a boolean and a date."""
    rng = np.random.default_rng(seed)
    size = rng.normal(100, 20, rows)
    color = rng.choice(["red", "green", "blue"], rows).astype(object)
    color[rng.random(rows) < 0.1] = None
    new = rng.random(rows) < 0.5
    day = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 700, rows), unit="D")
    price = 3 * size + np.where(color == "red", 80.0, 0.0) + 40 * new + rng.normal(0, 5, rows)
    return pd.DataFrame(
        {
            "size": size.round(2),
            "color": color,
            "new": new,
            "listed": day.strftime("%Y-%m-%d"),
            "price": price.round(2),
        }
    )


def test_huber_loss_streaming_a_csv_with_booleans_dates_and_gaps_and_the_pyfunc_agrees(project):
    raw_dir = project / "data" / "raw"
    raw_dir.mkdir(parents=True)
    _table().to_csv(raw_dir / "prices.csv", index=False)
    source = ("source=csv", "source.path=data/raw/prices.csv", "source.target=price", "features.task=regression")
    run_cli(project, "prepare", *source, check=True)
    # the streaming loader encodes each Parquet chunk with the fitted preprocessing, as memory does
    stream = ("data.loader=stream", "data.stream_chunk_rows=64")
    run_cli(project, "train", *source, "trainer.loss=huber", *stream, *SHORT, check=True)
    summary = json.loads((project / "models" / "train_run.json").read_text())
    assert summary["task"] == "regression" and summary["loss"] == "huber" and summary["loader"] == "stream", summary
    assert np.isfinite(summary["metrics"]["val_rmse"])

    from aiinfra.models.model_dir import Predictor

    predictor = Predictor.load(project / "models" / "model")
    rows = _table(rows=6, seed=1).drop(columns=["price"])
    rows.loc[0, "color"] = None
    rows.loc[1, "color"] = "purple"  # a category train never saw: the unknown column, not an error
    expected = predictor.predict_values(predictor.encode(predictor.contract.check_frame(rows)))
    assert np.isfinite(expected).all() and expected.std() > 0
    signature, served = _pyfunc_predict(project, summary["model_uri"], rows)
    assert signature == {"size": "double", "color": "string", "new": "boolean", "listed": "datetime"}, signature
    np.testing.assert_allclose(served, expected, rtol=1e-6, atol=1e-6)


def test_a_loss_that_does_not_fit_the_task_is_one_error_before_training(tproject, aiinfra_main):
    """mse on a classification task (the synthetic data), cross_entropy or class weights on a
    regression: ConfigError naming the key, the task and the losses that fit; nothing trained."""
    code, _, err = aiinfra_main("train", "trainer.loss=mse")
    assert code == 2, err
    assert "trainer.loss=mse is a regression loss, but the prepared data's task is binary" in err, err
    assert "auto, cross_entropy" in err and "Traceback" not in err
    assert not (tproject / "models" / "train_run.json").exists()

    from aiinfra.errors import ConfigError
    from aiinfra.training.schema import resolve_loss

    with pytest.raises(ConfigError, match="cross_entropy is a classification loss, but .* regression"):
        resolve_loss("cross_entropy", None, "regression")
    with pytest.raises(ConfigError, match="class_weights=balanced weighs classes"):
        resolve_loss("auto", "balanced", "regression")
    assert resolve_loss("auto", None, "regression") == "mse"
    assert resolve_loss("auto", "balanced", "multiclass") == "cross_entropy"
    assert resolve_loss("huber", None, "regression") == "huber"
