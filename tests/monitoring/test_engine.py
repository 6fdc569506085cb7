"""Column plans and edge cases of the verdict engine (no Evidently involved)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from aiinfra.errors import ConfigError, DataValidationError
from aiinfra.monitoring import engine
from aiinfra.monitoring.schema import DriftMonitorConfig
from aiinfra.monitoring.windows import CurrentData


@pytest.fixture
def g() -> np.random.Generator:
    """A generator per test: its data does not depend on which tests ran before it."""
    return np.random.default_rng(9)


def _ref(**columns):
    data = pd.DataFrame(columns)
    return engine.Reference(
        pa.Table.from_pandas(data, preserve_index=False),
        {"features": [c for c in columns if c != "target"], "target": "target"},
        "ref",
    )


def _cur(**columns):
    return CurrentData("current", ds.dataset(pa.Table.from_pandas(pd.DataFrame(columns), preserve_index=False)))


def _mon(**kw):
    return DriftMonitorConfig(**{"report_sample_rows": 100, "threads": 2, **kw})


def _run(mon, ref, cur):
    return {c["column"]: c for c in engine.run(mon, ref, cur, engine.plan_columns(mon, ref, cur)).columns}


def test_per_column_threshold_and_categorical_override(g):
    ref = _ref(a=g.normal(size=3000), code=g.integers(0, 8, 3000).astype(float), target=g.integers(0, 2, 3000))
    cur = _cur(a=g.normal(0.08, size=3000), code=g.integers(0, 8, 3000).astype(float))
    plain = _run(_mon(), ref, cur)
    assert plain["a"]["method"] == "wasserstein" and plain["code"]["method"] == "wasserstein"
    tuned = _run(_mon(per_column_threshold={"a": plain["a"]["score"] / 2}, categorical=["code"]), ref, cur)
    assert tuned["a"]["drifted"] and tuned["a"]["threshold"] == plain["a"]["score"] / 2
    assert tuned["code"]["type"] == "categorical" and tuned["code"]["method"] == "jensenshannon"


def test_a_feature_that_stopped_arriving_is_drift(g):
    ref = _ref(a=g.normal(size=2000), b=g.normal(size=2000), target=g.integers(0, 2, 2000))
    cur = _cur(a=np.full(500, np.nan), b=g.normal(size=500))
    out = _run(_mon(), ref, cur)
    assert out["a"]["drifted"] is True and out["a"]["score"] is None and "no non-missing" in out["a"]["note"]
    assert out["a"]["missing_share_current"] == 1.0 and out["b"]["drifted"] is False


def test_logged_string_labels_compare_with_an_integer_target(g):
    labels = g.integers(0, 2, 2000)
    ref = _ref(a=g.normal(size=2000), target=labels)
    cur = _cur(a=g.normal(size=2000), prediction=np.where(g.random(2000) < 0.5, "1", "0"))
    out = _run(_mon(), ref, cur)
    assert out["prediction"]["counted"] is False and out["prediction"]["drifted"] is False
    assert out["prediction"]["score"] < 0.05  # "0"/"1" matched 0/1, not four disjoint categories


@pytest.mark.parametrize(
    "mon,cur,error,words",
    [
        (_mon(per_column_method={"aa": "ks"}), {"a": [0.1, 0.2]}, ConfigError, "Did you mean 'a'"),
        (
            _mon(method="wasserstein", categorical=["a"]),
            {"a": [0.1, 0.2]},
            ConfigError,
            "does not apply to categorical column 'a'",
        ),
        (_mon(), {"a": ["x", "y"]}, DataValidationError, "numerical in the reference"),
        (_mon(), {"b": [1.0, 2.0]}, DataValidationError, "lacks column(s) a"),
    ],
)
def test_plan_errors_name_the_column_and_the_fix(mon, cur, error, words, g):
    ref = _ref(a=g.normal(size=50), target=g.integers(0, 2, 50))
    with pytest.raises(error) as info:
        engine.plan_columns(mon, ref, _cur(**cur))
    assert words in str(info.value) and "hint:" in str(info.value)
