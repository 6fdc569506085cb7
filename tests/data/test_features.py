"""Feature types, the data contract and the fitted transform (aiinfra/data/features.py), on
small frames built here: inference rules, train-only statistics, unseen categories, the checks
on incoming rows and the JSON round trip."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from aiinfra.data.features import (
    CONTRACT,
    PREPROCESS,
    UNKNOWN,
    ContractError,
    DataContract,
    FeatureTransform,
    FeatureType,
    Task,
    drop_missing_target,
    infer_contract,
    infer_task,
    type_table,
)
from aiinfra.data.schema import FeaturesConfig
from aiinfra.errors import DataValidationError

N = 200


def _frame(n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "row_id": np.arange(n),
            "x": rng.normal(size=n),
            "colour": rng.choice(["red", "green", "blue"], n),
            "flag": rng.choice(["yes", "no"], n),
            "day": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "note": [f"word{i % 7} and other words {i}" for i in range(n)],
            "code": [f"C{i % 120:03d}" for i in range(n)],
            "label": rng.choice(["a", "b"], n),
        }
    )


def _contract(frame, train=None, cfg=None, columns=None):
    train = frame.index[: int(len(frame) * 0.7)] if train is None else train
    return infer_contract(frame, SimpleNamespace(target="label", columns=columns), cfg or FeaturesConfig(), train)


def test_inferred_types_and_identifier_dropped_with_a_reason():
    contract = _contract(_frame())
    types = {c.name: c.type for c in contract.columns}
    assert types == {
        "x": FeatureType.numeric,
        "colour": FeatureType.categorical,
        "flag": FeatureType.boolean,
        "day": FeatureType.datetime,
        "note": FeatureType.text,
    }
    assert contract.dropped["row_id"].startswith("identifier: 140 distinct integers in 140 train rows")
    assert contract.dropped["code"].startswith("identifier-like")
    assert contract.task == Task.binary and contract.classes == ["a", "b"]
    assert contract.features == ["x", "colour", "flag", "day", "note"]


def test_config_types_and_source_columns_override_inference():
    frame = _frame()
    contract = _contract(
        frame,
        cfg=FeaturesConfig(types={"code": FeatureType.categorical}, drop=["note"]),
        columns={"row_id": "float", "flag": "str"},
    )
    types = {c.name: c.type for c in contract.columns}
    assert types["code"] == FeatureType.categorical and types["row_id"] == FeatureType.numeric
    assert types["flag"] == FeatureType.boolean  # str: inferred from the values
    assert contract.dropped == {"note": "features.drop"}


def test_a_wrong_type_override_names_the_value_and_row():
    with pytest.raises(ContractError) as exc:
        _contract(_frame(), cfg=FeaturesConfig(types={"colour": FeatureType.numeric}))
    assert exc.value.column == "colour" and "expects a number" in str(exc.value) and "(row 0)" in str(exc.value)


def test_unknown_column_in_features_config_is_an_error_with_did_you_mean():
    with pytest.raises(DataValidationError, match="features.drop names column 'colour_', .*Did you mean 'colour'"):
        _contract(_frame(), cfg=FeaturesConfig(drop=["colour_"]))


def test_all_null_column_is_an_error_naming_it_and_the_fix():
    frame = _frame().assign(empty=np.nan)
    with pytest.raises(DataValidationError) as exc:
        _contract(frame)
    assert "column 'empty' has no values in any row" in str(exc.value)
    assert exc.value.hint == "leave it out: features.drop=[empty]"


def test_one_class_target_is_an_error():
    with pytest.raises(DataValidationError, match="target 'label' has one class \\('a'\\) in all 200 rows"):
        _contract(_frame().assign(label="a"))


@pytest.mark.parametrize(
    "values, task, rule",
    [
        (np.linspace(2000, 6000, 94).round(1).tolist() * 2, Task.regression, "float with 94 distinct values, not all"),
        (list(range(30)) * 3, Task.regression, "integer with 30 distinct values (> features.regression_min_distinct"),
        ([0, 1, 2] * 30, Task.multiclass, "integer with 3 distinct values -> multiclass"),
        ([True, False] * 30, Task.binary, "boolean with 2 distinct values -> binary"),
    ],
)
def test_task_inference_prints_its_rule(values, task, rule):
    decision = infer_task(pd.Series(values, name="y"), FeaturesConfig())
    assert decision.task == task and rule in decision.rule
    assert decision.rule.endswith("(set features.task to override)")
    assert (decision.classes is None) == (task == Task.regression)


def test_regression_of_strings_is_an_error():
    with pytest.raises(DataValidationError, match="a regression target must be numeric"):
        infer_task(pd.Series(["a", "b"] * 5, name="y"), FeaturesConfig(task=Task.regression))


def test_rows_without_target_are_dropped_and_counted(caplog):
    frame = _frame().assign(label=lambda f: f["label"].where(f.index % 50 != 3))
    with caplog.at_level("WARNING"):
        kept = drop_missing_target(frame, "label")
    assert len(kept) == N - 4
    assert "dropped 4 of 200 rows without a value in the target 'label' (first at row 3)" in caplog.text


def test_statistics_come_from_train_rows_only():
    frame = _frame()
    frame.loc[frame.index % 10 == 0, "x"] = np.nan
    train = frame.index[:140]
    frame.loc[150, "colour"] = "purple"  # a category only a test row has
    frame.loc[141:, "x"] = 1e6  # test rows far off: they must not move the median
    cfg = FeaturesConfig()
    contract = _contract(frame, train=train, cfg=cfg)
    transform = FeatureTransform.fit(frame.loc[train], contract, cfg)
    colour = next(c for c in transform.columns if c.name == "colour")
    assert colour.categories == ["blue", "green", "red"] and "purple" not in contract.column("colour").categories
    x = next(c for c in transform.columns if c.name == "x")
    assert x.impute == pytest.approx(float(frame.loc[train, "x"].median()))
    assert x.impute != pytest.approx(float(frame["x"].median()))
    assert contract.column("x").max == pytest.approx(float(frame.loc[train, "x"].max()))
    assert contract.column("x").null_share == pytest.approx(14 / 140)


def test_encoding_unseen_categories_gaps_and_output_names():
    frame = _frame()
    frame.loc[5, "x"] = np.nan
    cfg = FeaturesConfig(text_buckets=8)
    contract = _contract(frame, cfg=cfg)
    transform = FeatureTransform.fit(frame.iloc[:140], contract, cfg)
    names = transform.output_names
    assert names[:2] == ["x", "x__missing"]
    assert [n for n in names if n.startswith("colour=")] == [
        "colour=blue",
        "colour=green",
        "colour=red",
        f"colour={UNKNOWN}",
    ]
    assert "day__epoch_days" in names and "note__h7" in names and not transform.is_identity
    rows = pd.DataFrame(
        {
            "x": [np.nan, 2.0],
            "colour": ["violet", "red"],
            "flag": ["no", "YES"],
            "day": ["2021-03-04", None],
            "note": ["word1 and", None],
        }
    )
    unseen: dict[str, int] = {}
    x = transform.transform(rows, unseen)
    assert x.shape == (2, len(names)) and x.dtype == np.float32
    col = {n: x[:, i] for i, n in enumerate(names)}
    assert unseen == {"colour": 1}
    assert col[f"colour={UNKNOWN}"].tolist() == [1.0, 0.0] and col["colour=red"].tolist() == [0.0, 1.0]
    assert col["x__missing"].tolist() == [1.0, 0.0] and col["x"][0] == pytest.approx(transform.columns[0].impute)
    assert col["flag"].tolist() == [0.0, 1.0]
    assert col["day__year"][0] == 2021 and col["day__month"][0] == 3
    assert sum(col[f"note__h{i}"][0] for i in range(8)) == 2.0  # two tokens


def test_all_numeric_without_gaps_is_identity():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50), "label": rng.integers(0, 2, 50)})
    contract = _contract(frame)
    transform = FeatureTransform.fit(frame.iloc[:35], contract, FeaturesConfig())
    assert transform.is_identity and transform.output_names == ["a", "b"]
    np.testing.assert_array_equal(transform.transform(frame), frame[["a", "b"]].to_numpy(np.float32))
    gappy = frame.assign(a=frame["a"].where(frame.index != 40))  # a gap in a test row only
    assert not FeatureTransform.fit(gappy.iloc[:35], _contract(gappy), FeaturesConfig()).is_identity


def test_encode_target_classification_and_regression():
    frame = _frame()
    contract = _contract(frame)
    transform = FeatureTransform.fit(frame.iloc[:140], contract, FeaturesConfig())
    np.testing.assert_array_equal(transform.encode_target(pd.Series(["b", "a"])), [1, 0])
    with pytest.raises(DataValidationError, match="target 'label' row 1 is 'c', not one of the classes"):
        transform.encode_target(pd.Series(["a", "c"]))
    reg = frame.assign(label=np.linspace(0, 1, len(frame)))
    transform = FeatureTransform.fit(reg.iloc[:140], _contract(reg), FeaturesConfig())
    y = transform.encode_target(reg["label"])
    assert transform.task == Task.regression and y.dtype == np.float32 and y[-1] == 1.0


def test_check_frame_coerces_request_values():
    frame = _frame()
    frame.loc[3, "x"] = np.nan
    contract = _contract(frame)
    rows = pd.DataFrame(
        {"note": ["hi"], "x": ["1.5"], "colour": ["red"], "flag": [1], "day": ["2020-02-03T10:00:00Z"], "extra": [0]}
    )
    checked = contract.check_frame(rows)
    assert list(checked.columns) == contract.features
    assert checked["x"].tolist() == [1.5] and checked["flag"].tolist() == [1.0]
    assert checked["day"].iloc[0] == pd.Timestamp("2020-02-03 10:00:00")


@pytest.mark.parametrize(
    "change, column, expected, got",
    [
        ({"x": ["abc"]}, "x", "a number", "abc"),
        ({"flag": ["maybe"]}, "flag", "a boolean", "maybe"),
        ({"day": ["03/02/2020"]}, "day", "an ISO 8601 date", "03/02/2020"),
        ({"colour": [None]}, "colour", "never missing", None),
        ({"colour": [["red"]]}, "colour", "a category", ["red"]),
    ],
    ids=["wrong-number", "wrong-bool", "wrong-date", "null-not-nullable", "list"],
)
def test_check_frame_errors_name_column_type_value_and_row(change, column, expected, got):
    frame = _frame()
    frame.loc[3, "x"] = np.nan  # x is nullable: a null there passes
    contract = _contract(frame)
    good = {"x": [None, 1.0], "colour": ["red"] * 2, "flag": ["no"] * 2, "day": ["2020-01-01"] * 2, "note": ["a"] * 2}
    contract.check_frame(pd.DataFrame(good))
    bad = {k: (v if k not in change else [v[0], *change[k]]) for k, v in good.items()}
    with pytest.raises(ContractError) as exc:
        contract.check_frame(pd.DataFrame(bad))
    assert (exc.value.column, exc.value.got, exc.value.row) == (column, got, 1)
    assert f"column '{column}' expects" in str(exc.value) and expected in str(exc.value) and "(row 1)" in str(exc.value)


def test_check_frame_missing_column():
    contract = _contract(_frame())
    with pytest.raises(ContractError, match="column 'note' expects a string, got 'no such column'") as exc:
        contract.check_frame(_frame().drop(columns=["note"]))
    assert "send every input column: x, colour, flag, day, note" in exc.value.hint


def test_json_round_trip_without_pickle(tmp_path):
    frame = _frame()
    frame.loc[3, "x"] = np.nan
    cfg = FeaturesConfig()
    contract = _contract(frame)
    transform = FeatureTransform.fit(frame.iloc[:140], contract, cfg)
    contract.save(tmp_path)
    transform.save(tmp_path)
    for name in (CONTRACT, PREPROCESS):
        json.loads((tmp_path / name).read_text())  # plain JSON
    again = FeatureTransform.load(tmp_path)
    assert DataContract.load(tmp_path) == contract and again == transform
    np.testing.assert_array_equal(again.transform(frame), transform.transform(frame))


def test_a_newer_format_is_refused(tmp_path):
    contract = _contract(_frame())
    (tmp_path / CONTRACT).write_text(json.dumps(contract.to_dict() | {"format": 99}))
    with pytest.raises(DataValidationError, match="contract.json has format 99"):
        DataContract.load(tmp_path)


def test_type_table_lists_every_column_and_decision():
    frame = _frame()
    cfg = FeaturesConfig()
    contract = _contract(frame, cfg=cfg)
    table = type_table(contract, frame, FeatureTransform.fit(frame.iloc[:140], contract, cfg))
    lines = table.splitlines()
    assert lines[0].replace(" ", "").split("|") == ["column", "type", "missing", "distinct", "example", "decision"]
    body = {ln.split("|")[0].strip(): ln for ln in lines[2:]}
    assert set(body) == set(frame.columns)
    assert "one-hot: 3 categories + __unknown__" in body["colour"]
    assert "dropped: identifier" in body["row_id"] and "binary: 2 classes" in body["label"]


def test_checked_rows_encode_as_the_raw_rows_do():
    """Serving encodes check_frame's output; training encodes the raw Parquet rows: the same matrix."""
    frame = _frame()
    frame.loc[3, "x"] = np.nan
    contract = _contract(frame)
    transform = FeatureTransform.fit(frame.iloc[:140], contract, FeaturesConfig())
    rows = frame.iloc[140:].reset_index(drop=True)
    np.testing.assert_array_equal(transform.transform(contract.check_frame(rows)), transform.transform(rows))


def test_unique_integers_are_an_identifier_only_when_a_sequence_or_named_so():
    rng = np.random.default_rng(2)
    spread = rng.choice(10**6, N, replace=False)  # unique, far from a sequence
    frame = _frame().drop(columns=["row_id", "code"]).assign(customer_id=spread, reading=spread, paid=spread)
    contract = _contract(frame)
    assert "customer_id" in contract.dropped and contract.dropped["customer_id"].startswith("identifier")
    assert contract.column("reading").type == contract.column("paid").type == FeatureType.numeric


@pytest.mark.parametrize(
    ("train_rows", "configured", "buckets"), [(140, None, 4), (700, None, 10), (5000, None, 32), (140, 8, 8)]
)
def test_text_buckets_follow_the_train_rows_unless_set(train_rows, configured, buckets):
    """features.text_buckets unset: one hashed token bucket per 64 train rows, from 4 to 32 (a
    small table's rare tokens do not get a network input each); set: exactly that many."""
    frame = _frame(int(train_rows / 0.7) + 1)
    cfg = FeaturesConfig(text_buckets=configured)
    contract = _contract(frame, cfg=cfg, columns={"note": "text"})
    train = frame.iloc[:train_rows]
    transform = FeatureTransform.fit(train, contract, cfg)
    note = next(c for c in transform.columns if c.name == "note")
    assert note.buckets == buckets
    assert [n for n in transform.output_names if n.startswith("note__h")] == [f"note__h{i}" for i in range(buckets)]
    assert transform.transform(train).shape[0] == train_rows
