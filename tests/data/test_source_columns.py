"""``source.columns``: declared types checked against the data, gaps allowed (they are imputed
later), and each declared type standing for a feature type."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from aiinfra.data.schema import COLUMN_FEATURE_TYPE, ColumnType, FeatureType
from aiinfra.data.validation import validate_frame
from aiinfra.errors import DataValidationError


def _cfg(**columns):
    return SimpleNamespace(target="label", columns=columns or None)


def test_declared_types_pass_with_gaps():
    frame = pd.DataFrame(
        {
            "n": [1.0, np.nan, 3.0],  # an int column with a gap reads as float
            "flag": [True, None, False],
            "yes": ["yes", "no", None],
            "s": ["a", None, "c"],
            "label": [0, 1, 0],
        }
    )
    columns = {"n": ColumnType.int, "flag": ColumnType.bool, "yes": ColumnType.bool, "s": ColumnType.str}
    assert validate_frame(frame, _cfg(**columns)) == ["n", "flag", "yes", "s"]
    assert validate_frame(frame, _cfg()) == ["n", "flag", "yes", "s"]  # strings are no longer refused


@pytest.mark.parametrize(
    "column, kind, expected",
    [
        ([1.5, 2.0, 3.0], ColumnType.int, "column 'c' should be int but is float64"),
        (["x", "1", "2"], ColumnType.float, "column 'c' should be float but is object (row 0: 'x')"),
        (["maybe", "yes", "no"], ColumnType.bool, "column 'c' should be bool but is object"),
    ],
)
def test_a_declared_type_the_data_does_not_have_names_the_column(column, kind, expected):
    frame = pd.DataFrame({"c": column, "label": [0, 1, 0]})
    with pytest.raises(DataValidationError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        validate_frame(frame, _cfg(c=kind))


def test_every_column_type_stands_for_a_feature_type():
    assert set(COLUMN_FEATURE_TYPE) == {str(t) for t in ColumnType}
    assert COLUMN_FEATURE_TYPE["float"] == COLUMN_FEATURE_TYPE["int"] == FeatureType.numeric
    assert COLUMN_FEATURE_TYPE["str"] is None  # text or categorical: inferred from the values
