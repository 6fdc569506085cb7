"""The small-frame path of DataContract.check_frame and FeatureTransform.transform (plain Python and
numpy, what serving runs per request) against the pandas path (what big frames run, the code
both had before the small path existed): generated frames of 1..64 rows with gaps, blank strings,
unseen categories, booleans as strings and numbers, ISO dates in many forms, numbers as strings
and values of the wrong type must give the same checked frame, the same float32 matrix, the same
unseen counts, or the same error (type, message, column, expected, value, row, hint)."""

from __future__ import annotations

import datetime
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinfra.data.contract import SMALL_FRAME, ColumnSpec, DataContract, coerce_small
from aiinfra.data.schema import FeatureType, Task
from aiinfra.data.transform import ColumnEncoding, FeatureTransform
from aiinfra.errors import AiinfraError

F = FeatureType
# (name, type, nullable): one never-missing column per kind too, for the "never missing" errors
COLUMNS = [
    ("num", F.numeric, True),
    ("num_full", F.numeric, False),
    ("cat", F.categorical, True),
    ("cat_full", F.categorical, False),
    ("flag", F.boolean, True),
    ("flag_full", F.boolean, False),
    ("when", F.datetime, True),
    ("when_full", F.datetime, False),
    ("note", F.text, True),
]


def _contract() -> DataContract:
    specs = [
        ColumnSpec(name, kind, nullable, 0.1 if nullable else 0.0, 3, "x", categories=None)
        for name, kind, nullable in COLUMNS
    ]
    return DataContract(specs, target="y", task=Task.binary, classes=[0, 1], target_type=F.numeric)


def _transform() -> FeatureTransform:
    encodings = [
        ColumnEncoding("num", F.numeric, impute=2.5, indicator=True),
        ColumnEncoding("num_full", F.numeric, impute=None),
        ColumnEncoding("cat", F.categorical, indicator=True, categories=["1", "Lyon", "Oslo", "true"]),
        ColumnEncoding("cat_full", F.categorical, categories=["a", "b"]),
        ColumnEncoding("flag", F.boolean, impute=1.0, indicator=True),
        ColumnEncoding("flag_full", F.boolean, impute=0.0),
        ColumnEncoding("when", F.datetime, impute=1.6e9 + 0.123456789, indicator=True),
        ColumnEncoding("when_full", F.datetime, impute=-1e9),
        ColumnEncoding("note", F.text, buckets=8, indicator=True),
    ]
    return FeatureTransform(encodings, target="y", task=Task.binary, classes=[0, 1])


def _date_text(d: datetime.datetime, form: int) -> str:
    return [
        d.strftime("%Y-%m-%d"),
        d.strftime("%Y/%m/%d"),
        d.strftime("%Y-%m-%dT%H:%M:%S"),
        d.strftime("%Y-%m-%d %H:%M"),
        d.strftime("%Y-%m-%dT%H:%M:%SZ"),
        d.strftime("%Y-%m-%dT%H:%M:%S.%f+02:00"),
        " " + d.strftime("%Y-%m-%d") + " ",
    ][form]


DATES = st.builds(
    _date_text,
    st.datetimes(min_value=datetime.datetime(1600, 1, 1), max_value=datetime.datetime(2400, 12, 31)),
    st.integers(0, 6),
)
ODD_DATES = st.sampled_from(
    ["2020-02-30", "2021-13-01", "2020-01-01T24:00", "2020-01-01T23:59:60", "2020/01-01", "2020-1-1", "20200101"]
)
WORDS = st.sampled_from(
    ["Lyon", "Oslo", "Rome", "a", "b", "zz", "true", "False", "YES", "no", "1", "0", "t", "n", "late fee", "x-y"]
)
NUMBER_TEXT = st.sampled_from(["3.5", " 42 ", "-1e3", "1_000", "0x10", "inf", "-inf", "nan", "NaN", "1.0", "7"])
VALUE = st.one_of(
    st.none(),
    st.just(float("nan")),
    st.sampled_from(["", "   "]),
    st.booleans(),
    st.integers(-5, 5),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, width=64),
    st.sampled_from([0.0, 1.0, 3.0, 2.5]),
    WORDS,
    NUMBER_TEXT,
    DATES,
    ODD_DATES,
    st.text(max_size=6),
)
# a column is one "theme" most of the time (a number column with a few odd values), else anything
THEMED = {
    "numbers": st.one_of(st.floats(allow_nan=True, allow_infinity=False, width=64), st.none(), NUMBER_TEXT),
    "bools": st.one_of(st.booleans(), st.sampled_from(["true", "False", "yes", "NO", "1", "0", 1, 0, 1.0]), st.none()),
    "dates": st.one_of(DATES, st.none(), st.just("")),
    "words": st.one_of(WORDS, st.none()),
    "anything": VALUE,
}


def _draw_columns(draw, n: int) -> dict[str, list]:
    """Each column's ``n`` values: one theme most of the time, sometimes mixed with anything."""
    columns = {}
    for name, _kind, _nullable in COLUMNS:
        theme = draw(st.sampled_from(sorted(THEMED)))
        mix = st.one_of(THEMED[theme], VALUE) if draw(st.booleans()) else THEMED[theme]
        columns[name] = draw(st.lists(mix, min_size=n, max_size=n))
    return columns


@st.composite
def frames(draw) -> pd.DataFrame:
    n = draw(st.integers(1, 64))
    columns = _draw_columns(draw, n)
    frame = pd.DataFrame(columns, index=range(n))
    if draw(st.booleans()):  # a request frame's index need not start at 0: rows are positions
        frame.index = frame.index + 7
    if draw(st.integers(0, 9)) == 0:  # a missing column
        frame = frame.drop(columns=[draw(st.sampled_from([c for c, _, _ in COLUMNS]))])
    return frame


# values each column's type accepts (nulls where the column may have them): a request drawn from
# the themes above almost never passes all nine checks, so without these the encoding of
# accepted requests would hardly be compared
FITTING = {
    F.numeric: st.one_of(
        st.floats(min_value=-1e30, max_value=1e30),
        st.integers(-(10**6), 10**6),
        st.sampled_from(["3.5", " 42 ", "-1e3"]),
    ),
    F.boolean: st.one_of(st.booleans(), st.sampled_from(["true", "False", "yes", "NO", "1", "0", 1, 0, 1.0])),
    F.datetime: st.builds(
        _date_text,
        st.datetimes(min_value=datetime.datetime(1700, 1, 1), max_value=datetime.datetime(2250, 12, 31)),
        st.integers(0, 5),  # not form 6: a padded date is refused
    ),
    F.categorical: WORDS,
    F.text: WORDS,
}


@st.composite
def requests(draw) -> tuple[dict[str, list], int]:
    """A parsed request's columns (column -> plain JSON values), as RawRows hands them over: half
    of them of values each column's type accepts (mostly passing the check), half from themes."""
    n = draw(st.integers(1, 64))
    if draw(st.booleans()):
        columns = {
            name: draw(
                st.lists(st.one_of(FITTING[kind], st.none()) if nullable else FITTING[kind], min_size=n, max_size=n)
            )
            for name, kind, nullable in COLUMNS
        }
    else:
        columns = _draw_columns(draw, n)
    if draw(st.integers(0, 9)) == 0:  # a missing column
        del columns[draw(st.sampled_from([c for c, _, _ in COLUMNS]))]
    return columns, n


def _outcome(call):
    try:
        return "ok", call()
    except (AiinfraError, ValueError, TypeError, KeyError) as exc:
        facts = (type(exc), str(exc), getattr(exc, "hint", None))
        return "error", facts + tuple(repr(getattr(exc, a, None)) for a in ("column", "expected", "got", "row"))


def _same(small, reference) -> None:
    assert small[0] == reference[0], (small, reference)
    if small[0] == "error":
        assert small[1] == reference[1]
        return
    a, b = small[1], reference[1]
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    else:
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


CONTRACT, TRANSFORM = _contract(), _transform()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frames())
def test_small_path_checks_and_encodes_like_the_pandas_path(frame):
    small = _outcome(lambda: CONTRACT.check_frame(frame))
    reference = _outcome(lambda: CONTRACT.check_frame_pandas(frame))
    _same(small, reference)
    if small[0] == "ok":
        unseen_small: dict[str, int] = {}
        unseen_ref: dict[str, int] = {}
        _same(
            _outcome(lambda: TRANSFORM.transform(small[1], unseen=unseen_small)),
            _outcome(lambda: TRANSFORM.transform_pandas(reference[1], unseen=unseen_ref)),
        )
        assert unseen_small == unseen_ref
    # the raw frame straight into the transform (lenient: what does not parse is a gap)
    raw_small: dict[str, int] = {}
    raw_ref: dict[str, int] = {}
    _same(
        _outcome(lambda: TRANSFORM.transform(frame, unseen=raw_small)),
        _outcome(lambda: TRANSFORM.transform_pandas(frame, unseen=raw_ref)),
    )
    assert raw_small == raw_ref


def test_a_batch_of_the_small_path_limit_matches_the_pandas_path():
    """SMALL_FRAME rows (the biggest small frame) of values drawn from a fixed pool, each column
    mixing every kind of value: the same frame, matrix and unseen counts (lenient, raw frame) and
    the same first error (strict)."""
    rng = np.random.default_rng(3)
    pool = [None, float("nan"), "", " ", True, False, 0, 1, 7, 2.5, 1.0, -3e9, "3.5", " 42 ", "abc", "true", "no"]
    pool += ["Lyon", "Oslo", "zz", "2020-01-31", "2012/01/31", "1969-12-31T23:59:59", "2020-01-01 10:30", "late fee"]
    pool += ["2020-01-01T10:30:00Z", "2020-02-30", "1600-01-01"]
    frame = pd.DataFrame(
        {name: [pool[i] for i in rng.integers(0, len(pool), SMALL_FRAME)] for name, _, _ in COLUMNS},
        index=range(SMALL_FRAME),
    )
    _same(_outcome(lambda: CONTRACT.check_frame(frame)), _outcome(lambda: CONTRACT.check_frame_pandas(frame)))
    unseen_small: dict[str, int] = {}
    unseen_ref: dict[str, int] = {}
    _same(
        _outcome(lambda: TRANSFORM.transform(frame, unseen=unseen_small)),
        _outcome(lambda: TRANSFORM.transform_pandas(frame, unseen=unseen_ref)),
    )
    assert unseen_small == unseen_ref and unseen_small
    dates = ["2020-01-31", "2012/01/31", "1969-12-31T23:59:59", "2020-01-01 10:30", "2020-01-01T10:30:00Z"]
    clean = frame.assign(
        num="1.5", num_full=2, cat="Oslo", cat_full="b", flag="yes", flag_full=0, note="a b", when=None
    ).assign(when_full=[dates[i] for i in rng.integers(0, len(dates), SMALL_FRAME)])
    small = _outcome(lambda: CONTRACT.check_frame(clean))
    assert small[0] == "ok", small
    _same(small, _outcome(lambda: CONTRACT.check_frame_pandas(clean)))
    _same(_outcome(lambda: TRANSFORM.transform(small[1])), _outcome(lambda: TRANSFORM.transform_pandas(small[1])))


def test_a_serving_row_takes_the_small_path_for_every_column():
    """JSON rows (numbers, a numeric string, a bool as a string, a plain ISO date, text) never fall
    back to pandas: the small path covers what clients send."""
    row = {
        "num": ["41.5"],
        "num_full": [3],
        "cat": ["Oslo"],
        "cat_full": ["zz"],
        "flag": ["true"],
        "flag_full": [0],
        "when": ["2021-03-04"],
        "when_full": ["2021-03-04T10:30:00"],
        "note": ["late fee"],
    }
    frame = pd.DataFrame(row, index=range(1))
    for name, kind, _ in COLUMNS:
        assert coerce_small(frame[name], kind, name) is not None, name
    checked = CONTRACT.check_frame(frame)
    for name, kind, _ in COLUMNS:
        assert coerce_small(checked[name], kind, name) is not None, name
    unseen: dict[str, int] = {}
    x = TRANSFORM.transform(checked, unseen=unseen)
    assert unseen == {"cat_full": 1}
    names = TRANSFORM.output_names
    assert x[0, names.index("num")] == pytest.approx(41.5)
    assert x[0, names.index("when__year")] == 2021 and x[0, names.index("when__dayofweek")] == 3  # a Thursday
    assert math.isclose(x[0, names.index("when_full__epoch_days")], 18690.4375, rel_tol=1e-6)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("num", "abc", "column 'num' expects a number, got 'abc' (row 2)."),
        ("flag", "maybe", "column 'flag' expects a boolean (true/false, yes/no, 1/0), got 'maybe' (row 2)."),
        ("when", "2020-02-30", "column 'when' expects an ISO 8601 date"),
        ("num_full", None, "column 'num_full' expects a number (never missing in the training data), got None"),
    ],
)
def test_small_path_errors_name_column_value_and_row(column, value, message):
    frame = pd.DataFrame(
        {
            "num": [1.0] * 3,
            "num_full": [1.0] * 3,
            "cat": ["a"] * 3,
            "cat_full": ["a"] * 3,
            "flag": [True] * 3,
            "flag_full": [True] * 3,
            "when": ["2020-01-01"] * 3,
            "when_full": ["2020-01-01"] * 3,
            "note": ["x"] * 3,
        }
    )
    frame[column] = frame[column].astype(object)
    frame.loc[2, column] = value
    with pytest.raises(AiinfraError) as small:
        CONTRACT.check_frame(frame)
    with pytest.raises(AiinfraError) as reference:
        CONTRACT.check_frame_pandas(frame)
    assert str(small.value) == str(reference.value)
    assert str(small.value).startswith(message)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(requests())
def test_a_request_checked_from_its_lists_equals_the_frame_path(request):
    """Serving checks a request's parsed lists (check_columns) and encodes the checked arrays
    (transform_checked) with no DataFrame built: the same values, matrix, unseen counts and
    errors as pandas' check and transform of the frame the lists make (the reference
    implementations, not the small-frame path: that shares the row-by-row encoder)."""
    columns, n = request
    frame = pd.DataFrame(columns, index=range(n))
    lists = _outcome(lambda: CONTRACT.check_columns(columns, n))
    reference = _outcome(lambda: CONTRACT.check_frame_pandas(frame))
    assert lists[0] == reference[0], (lists, reference)
    if lists[0] == "error":
        assert lists[1] == reference[1]
        return
    checked, frame_checked = lists[1], reference[1]
    assert list(checked) == list(frame_checked.columns)
    pd.testing.assert_frame_equal(pd.DataFrame(checked, index=range(n)), frame_checked, check_exact=True)
    unseen_lists: dict[str, int] = {}
    unseen_ref: dict[str, int] = {}
    _same(
        _outcome(lambda: TRANSFORM.transform_checked(checked, n, unseen=unseen_lists)),
        _outcome(lambda: TRANSFORM.transform_pandas(frame_checked, unseen=unseen_ref)),
    )
    assert unseen_lists == unseen_ref


def test_a_request_beyond_the_small_path_limit_checks_and_encodes_alike():
    """More than SMALL_FRAME rows: check_columns and transform_checked hand over to pandas, with
    the same result as the frame path."""
    n = SMALL_FRAME + 2  # a multiple of 3
    columns = {
        "num": [1.5, None, "2"] * (n // 3),
        "num_full": [3] * n,
        "cat": ["Oslo", None, "zz"] * (n // 3),
        "cat_full": ["a"] * n,
        "flag": ["yes", None, False] * (n // 3),
        "flag_full": [0] * n,
        "when": ["2020-01-31", None, "2021-03-04T10:30:00"] * (n // 3),
        "when_full": ["2020-01-31"] * n,
        "note": ["late fee", None, "x"] * (n // 3),
    }
    checked = CONTRACT.check_columns(columns, n)
    frame_checked = CONTRACT.check_frame(pd.DataFrame(columns, index=range(n)))
    pd.testing.assert_frame_equal(pd.DataFrame(checked, index=range(n)), frame_checked, check_exact=True)
    unseen: dict[str, int] = {}
    np.testing.assert_array_equal(
        TRANSFORM.transform_checked(checked, n, unseen=unseen), TRANSFORM.transform(frame_checked)
    )
    assert unseen == {"cat": n // 3}
