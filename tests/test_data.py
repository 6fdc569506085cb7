"""prepare: schema validation of source data and deterministic splits."""

from __future__ import annotations

import csv
import json
import re

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
        (lambda f: f.rename(columns={"label": "lable"}), [], "target column 'label' is missing"),
    ],
    ids=["missing-column", "wrong-type", "missing-target"],
)
def test_bad_source_data_names_the_column(project, mutate, overrides, expected):
    path = _csv(project, mutate(_frame()))
    proc = run_cli(project, "prepare", "source=csv", f"source.path={path}", "source.target=label", *overrides)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr and "hint:" in proc.stderr and "Traceback" not in proc.stderr


def test_a_gap_in_a_feature_is_imputed_not_refused(project):
    """Gaps in features no longer need ``source.allow_nan`` (kept, without effect): prepare
    accepts them and the contract records the column as nullable with its train null share."""
    frame = _frame()
    frame.loc[3, "a"] = np.nan
    path = _csv(project, frame)
    run_cli(project, "prepare", "source=csv", f"source.path={path}", "source.target=label", check=True)
    contract = json.loads((project / "data" / "prepared" / "contract.json").read_text())
    column = next(c for c in contract["columns"] if c["name"] == "a")
    assert column["nullable"] is True and column["type"] == "numeric", column


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


# --- CSV files that pandas would misread: each is a clear error naming the row or column ------


def _read_csv_source(tmp_path, data: bytes):
    from types import SimpleNamespace

    from aiinfra.data.sources import CSVSource

    path = tmp_path / "in.csv"
    path.write_bytes(data)
    return CSVSource(SimpleNamespace(path=str(path))).read()


_CONTROL = [b for b in range(0x20) if b not in (0x09, 0x0A, 0x0D)] + [0x7F]


@pytest.mark.parametrize("byte", _CONTROL, ids=[f"0x{b:02x}" for b in _CONTROL])
def test_csv_control_byte_anywhere_in_a_value_names_its_row_and_column(tmp_path, byte):
    from aiinfra.errors import DataValidationError

    rng = np.random.default_rng(byte)
    rows = [[f"{v:.4f}" for v in rng.random(3)] for _ in range(6)]
    r, c = int(rng.integers(len(rows))), int(rng.integers(3))
    value = rows[r][c]
    cut = int(rng.integers(1, len(value)))
    rows[r][c] = value[:cut] + chr(byte) + value[cut:]  # inside the number, as in 0.47<NUL>21
    text = "a,b,label\n" + "".join(",".join(row) + "\n" for row in rows)
    with pytest.raises(DataValidationError) as exc:
        _read_csv_source(tmp_path, text.encode())
    message = str(exc.value)
    assert f"byte 0x{byte:02x}" in message
    assert f"data row {r + 1} (line {r + 2}), column {c + 1} ('{['a', 'b', 'label'][c]}')" in message


@pytest.mark.parametrize(
    "header, dup",
    [("a,b,a", ("a", 1, 3)), ("a, b ,b", ("b", 2, 3)), ("x,label,label ", ("label", 2, 3)), ('"a","a"', ("a", 1, 2))],
)
def test_csv_duplicate_column_names_after_stripping_are_an_error(tmp_path, header, dup):
    from aiinfra.errors import DataValidationError

    n = len(next(csv.reader([header])))
    body = "".join(",".join(str(i + j) for j in range(n)) + "\n" for i in range(3))
    with pytest.raises(DataValidationError, match=rf"'{dup[0]}' appears twice .*columns {dup[1]} and {dup[2]}"):
        _read_csv_source(tmp_path, (header + "\n" + body).encode())


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"a,b,label\n", "has a header (a, b, label) but no data rows"),
        (b"a,b,label\r\n\r\n", "but no data rows"),
        (b"", "is empty"),
        (b"\n\n  \n", "is empty"),
        (b"a,,label\n1,2,3\n", "column 2 of the header has no name"),
    ],
)
def test_csv_without_data_or_names_says_so(tmp_path, data, expected):
    from aiinfra.errors import DataValidationError

    with pytest.raises(DataValidationError, match=re.escape(expected)):
        _read_csv_source(tmp_path, data)


def test_csv_with_tabs_quotes_and_crlf_still_reads(tmp_path):
    frame = _read_csv_source(tmp_path, b'a,"b, quoted",label\r\n0.4721,\t2.5,1\r\n0.1,3,0\r\n')
    assert list(frame.columns) == ["a", "b, quoted", "label"]
    assert frame["a"].tolist() == [0.4721, 0.1]


def test_csv_nul_inside_a_number_fails_prepare_with_one_line(project):
    path = project / "data" / "raw" / "in.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"0.{i:04d},{i % 2}\n" for i in range(40))
    path.write_bytes(b"x,label\n" + rows.encode().replace(b"0.0007", b"0.00\x0007"))
    proc = run_cli(project, "prepare", "source=csv", f"source.path={path}", "source.target=label")
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("aiinfra: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert "byte 0x00 (a control character) in data row 8 (line 9), column 1 ('x')" in errors[0]
