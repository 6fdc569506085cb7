"""prepare's data-quality profile and its comparison with the last run: in process on frames, and
end to end through the CLI on a CSV whose column empties between runs (warn, fail, the ledger's
statuses, then ``aiinfra audit verify`` and ``aiinfra audit report`` on what the runs wrote)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aiinfra.governance import quality
from aiinfra.governance.audit_cli import main as audit_main
from project_helpers import REPO, cli_env


def _frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "width": rng.normal(10, 2, n).round(3),
            "height": rng.uniform(0, 5, n).round(3),
            "color": rng.choice(["red", "green", "blue"], n),
            "label": rng.integers(0, 2, n),
        }
    )


def _kinds(old: pd.DataFrame, new: pd.DataFrame, limit: float = 0.05) -> set[tuple[str, str]]:
    before = quality.profile(old, {"train": len(old)})
    after = quality.profile(new, {"train": len(new)})
    return {(c["column"], c["kind"]) for c in quality.compare(before, after, limit)}


def test_a_profile_holds_types_nulls_categories_and_ranges():
    frame = _frame()
    frame.loc[:9, "height"] = np.nan
    prof = quality.profile(frame, {"train": 140, "val": 30, "test": 30})
    assert prof["rows"] == {"train": 140, "val": 30, "test": 30} and prof["total_rows"] == 200
    assert prof["columns"]["height"]["null_share"] == 0.05
    assert set(prof["columns"]["color"]["categories"]) == {"red", "green", "blue"}
    width = prof["columns"]["width"]
    assert width["min"] == frame["width"].min() and width["max"] == frame["width"].max()
    assert json.loads(json.dumps(prof)) == prof  # plain JSON


def test_the_same_data_has_no_changes_and_each_change_is_named():
    base = _frame()
    assert _kinds(base, base.copy()) == set()
    gaps = base.copy()
    gaps.loc[:59, "height"] = np.nan  # 0% -> 30%
    assert _kinds(base, gaps) == {("height", "nulls")}
    assert _kinds(base, gaps, limit=0.5) == set()  # within audit.max_null_increase
    assert _kinds(base, base.drop(columns=["color"]).assign(shade=1.0)) == {("color", "removed"), ("shade", "added")}
    assert _kinds(base, base.assign(label=base["label"].astype(str))) >= {("label", "type")}
    assert _kinds(base, base.assign(color=base["color"].replace({"red": "purple"}))) == {("color", "categories")}
    assert _kinds(base, base.assign(width=base["width"] * 3)) == {("width", "range")}


def test_check_compares_with_the_profile_on_disk_and_fails_naming_every_change(tmp_path, monkeypatch):
    from aiinfra.config.compose import compose
    from aiinfra.config.validate import validate
    from aiinfra.errors import DataValidationError
    from aiinfra.plugins.manager import get_plugins

    monkeypatch.chdir(tmp_path)
    shutil.copytree(REPO / "conf", tmp_path / "conf")

    def cfg(*overrides: str):
        return validate(compose(list(overrides), tmp_path / "conf"), get_plugins().registry)

    base = _frame()
    outputs: dict = {}
    (tmp_path / "data" / "prepared").mkdir(parents=True)
    quality.write_profile(cfg(), quality.profile(base, {"train": 200}), outputs)
    assert outputs["profile"].startswith("sha256:")
    changed = base.drop(columns=["color"]).assign(width=base["width"] * 3)
    current = quality.profile(changed, {"train": 200})
    with pytest.raises(DataValidationError) as exc:
        quality.check(cfg("audit.data_quality=fail"), current)
    assert "1 column(s) gone: color" in str(exc.value) and "column 'width': range" in str(exc.value)
    assert "audit.data_quality=warn" in str(exc.value)
    assert len(quality.check(cfg(), current)["changes"]) == 2  # warn: the same two, no error
    assert quality.check(cfg("audit.data_quality=off"), current) | {"rows": None} == {
        "action": "off",
        "compared": False,
        "rows": None,
        "columns": 3,
        "changes": [],
    }


def _csv(root: Path, frame: pd.DataFrame) -> None:
    (root / "data" / "raw").mkdir(parents=True, exist_ok=True)
    frame.to_csv(root / "data" / "raw" / "shapes.csv", index=False)


def _prepare(root: Path, *overrides: str) -> subprocess.CompletedProcess:
    source = ["source=csv", "source.path=data/raw/shapes.csv", "source.target=label"]
    return subprocess.run(
        [sys.executable, "-m", "aiinfra", "prepare", *source, *overrides],
        cwd=root,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def csv_project(tmp_path) -> Path:
    """A project on a small CSV (prepare needs no MLflow store)."""
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copytree(REPO / "conf", root / "conf")
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    _csv(root, _frame())
    return root


def test_a_changed_source_warns_fails_on_request_and_every_run_is_in_the_ledger(csv_project, monkeypatch, capsys):
    root = csv_project
    first = _prepare(root)
    assert first.returncode == 0, first.stderr[-3000:]
    profile_path = root / "data" / "prepared" / "profile.json"
    assert json.loads(profile_path.read_text())["columns"]["height"]["null_share"] == 0.0
    # as `dvc repro` does before it runs prepare: the previous profile is then the ledger's
    shutil.rmtree(root / "data" / "prepared")

    changed = _frame()
    changed.loc[::2, "height"] = np.nan  # half the column emptied
    _csv(root, changed)
    refused = _prepare(root, "audit.data_quality=fail")
    assert refused.returncode == 2
    err = refused.stderr
    assert "aiinfra: error: the data changed since the last prepare" in err and "Traceback" not in err
    assert "column 'height': null share 0.0% -> 50.0%" in err and "audit.data_quality=warn" in err
    assert not (root / "data" / "prepared").exists()  # nothing written

    accepted = _prepare(root)
    assert accepted.returncode == 0, accepted.stderr[-3000:]
    assert "WARNING" in accepted.stderr and "data quality: column 'height': null share 0.0% -> 50.0%" in accepted.stderr
    assert json.loads(profile_path.read_text())["columns"]["height"]["null_share"] == 0.5

    records = [json.loads(line) for line in (root / "logs" / "ledger.jsonl").read_text().splitlines()]
    assert [(r["seq"], r["stage"], r["status"], r["exit_code"]) for r in records] == [
        (0, "prepare", "ok", 0),
        (1, "prepare", "error", 2),
        (2, "prepare", "ok", 0),
    ]
    assert records[1]["error"].startswith("DataValidationError: the data changed since the last prepare")
    assert records[0]["inputs"]["data/raw/shapes.csv"] != records[2]["inputs"]["data/raw/shapes.csv"]
    dq = records[2]["results"]["data_quality"]
    assert dq["compared"] and [(c["column"], c["kind"]) for c in dq["changes"]] == [("height", "nulls")]
    assert records[0]["results"]["data_quality"]["compared"] is False  # nothing to compare with
    stored = root / "logs" / "profiles" / (dq["profile"].replace(":", "-") + ".json")
    assert json.loads(stored.read_text()) == json.loads(profile_path.read_text())

    # the audit commands on what the runs wrote (in process: the CLI's own subprocess run is in
    # test_audit_cli.py)
    monkeypatch.chdir(root)
    assert audit_main(["verify"]) == 0
    out = capsys.readouterr().out
    assert "logs/ledger.jsonl: 3 records (seq 0..2), head seq 2 sha256:" in out
    assert audit_main(["report"]) == 0
    assert "wrote reports/audit/index.html: 3 stage runs, 0 registry events; chains verified" in capsys.readouterr().out
    page = (root / "reports" / "audit" / "index.html").read_text()
    assert "<h2>Stage runs</h2>" in page and "<td>prepare</td>" in page and "verified" in page
    assert "column &#x27;height&#x27;: null share 0.0% -&gt; 50.0%" in page
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")  # self-contained
