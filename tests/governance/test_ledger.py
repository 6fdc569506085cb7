"""The run ledger: content hashes (cached by size and mtime), the dvc.yaml inputs and outputs of a
stage, the record's exact format, statuses, secrets kept out, a write failure that does not fail
the stage; and a real sweep whose every job appends its record."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aiinfra.errors import ConfigError
from aiinfra.governance import chain, ledger
from project_helpers import REPO, cli_env

#: the record format shared with `aiinfra costs` (the helpers' preamble)
FIELDS = {
    "seq", "stage", "command", "config_hash", "inputs", "outputs", "start", "end", "status", "exit_code", "error",
    "host", "user", "git_commit", "usage", "cost", "labels", "results", "prev_hash", "hash",
}  # fmt: skip


def _old(path: Path) -> None:
    """Back-date ``path`` past the racy window, as a file written minutes ago."""
    past = time.time() - 60
    os.utime(path, (past, past))


def test_a_file_hash_is_cached_by_size_and_mtime(tmp_path):
    data = tmp_path / "big.bin"
    data.write_bytes(os.urandom(1 << 20))
    cache = ledger.HashCache(tmp_path / "cache.json")
    fresh = cache.file(data)
    assert fresh.startswith("sha256:") and not cache.entries  # written just now: not cached (racy)
    _old(data)
    assert cache.file(data) == fresh and cache.entries
    cache.save()
    again = ledger.HashCache(tmp_path / "cache.json")
    assert again.file(data) == fresh and (again.hits, again.read_bytes) == (1, 0)  # not read again
    data.write_bytes(os.urandom(1 << 20))
    _old(data)
    assert again.file(data) != fresh and again.read_bytes == 1 << 20


def test_a_directory_hash_covers_names_and_contents(tmp_path):
    folder = tmp_path / "prepared"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.parquet").write_bytes(b"a")
    (folder / "sub" / "b.json").write_bytes(b"b")
    cache = ledger.HashCache(tmp_path / "cache.json")
    first = cache.path_hash(folder)
    assert cache.path_hash(folder) == first
    (folder / "sub" / "b.json").rename(folder / "sub" / "c.json")
    renamed = cache.path_hash(folder)
    (folder / "sub" / "c.json").write_bytes(b"c")
    assert len({first, renamed, cache.path_hash(folder)}) == 3
    assert cache.path_hash(tmp_path / "missing") is None


def test_a_stage_s_inputs_and_outputs_come_from_dvc_yaml():
    inputs, outputs = ledger.stage_files("train", REPO)
    assert "data/prepared/train.parquet" in inputs and "data/prepared/contract.json" in inputs
    assert outputs == ["models/model", "models/train_run.json", "plots/training_curve.csv"]
    assert ledger.stage_files("evaluate", REPO)[1][0] == "metrics.json"  # metrics and plots are outputs
    assert ledger.stage_files("serve", REPO) == ([], [])  # no DVC stage: nothing to hash
    moved = {"models": "/sweep/3/models", "metrics.json": "/sweep/3/metrics.json"}
    assert ledger._moved("models/model", moved) == "/sweep/3/models/model"
    assert ledger._moved("metrics.json", moved) == "/sweep/3/metrics.json"
    assert ledger._moved("modelsx/y", moved) == "modelsx/y"


def test_error_text_keeps_aiinfra_messages_and_only_the_class_of_anything_else():
    err = ConfigError("source.path: no such file 'x.csv'.\nmore", hint="point it at your CSV")
    assert ledger.error_text(err) == "ConfigError: source.path: no such file 'x.csv'."
    assert ledger.error_text(RuntimeError("connect failed: password=hunter2")) == "RuntimeError"


def test_jsonable_keeps_the_json_part_of_outputs():
    import numpy as np

    out = ledger.jsonable({"run_id": "r1", "n": np.int64(3), "path": Path("a/b"), "model": object(), "none": None})
    assert out == {"run_id": "r1", "n": 3, "path": "a/b", "none": None}


@pytest.fixture
def project_cfg(tmp_path, monkeypatch):
    """A real validated config of the repo's conf/, in a temporary project directory."""
    from aiinfra.config.compose import compose
    from aiinfra.config.validate import validate
    from aiinfra.plugins.manager import get_plugins

    root = tmp_path / "proj"
    root.mkdir()
    shutil.copytree(REPO / "conf", root / "conf")
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    monkeypatch.chdir(root)

    def load(*overrides: str):
        return validate(compose(list(overrides), root / "conf"), get_plugins().registry)

    return root, load


def test_a_record_has_the_shared_format_and_each_status(project_cfg):
    root, load = project_cfg
    cfg = load("+costs.labels.team=ml")
    prepared = root / "data" / "prepared"
    prepared.mkdir(parents=True)
    (prepared / "train.parquet").write_bytes(b"rows")
    run = ledger.StageRun("evaluate", "aiinfra evaluate")
    run.configured(cfg)
    (root / "metrics.json").write_text("{}")
    record = run.finish({"run_id": "abc", "exit_code": 0, "model": object()})
    assert set(record) == FIELDS
    assert record["config_hash"] == ledger.config_hash(cfg) and record["config_hash"].startswith("sha256:")
    assert record["outputs"]["metrics.json"].startswith("sha256:") and record["inputs"]["models/model"] is None
    assert (record["status"], record["exit_code"], record["error"]) == ("ok", 0, None)
    assert record["results"] == {"run_id": "abc", "exit_code": 0}
    assert record["labels"] == {"team": "ml"} and record["cost"]["currency"] == "USD"
    assert record["usage"]["wall_s"] > 0 and record["git_commit"] is None  # not a git repository
    assert record["start"].endswith("Z") and record["start"] <= record["end"]
    assert run.finish({}) is record  # once per run

    interrupted = ledger.StageRun("train", "aiinfra train")
    interrupted.configured(cfg)
    assert interrupted.finish(error=KeyboardInterrupt())["status"] == "interrupted"
    failed = ledger.StageRun("register", "aiinfra register")
    failed.configured(cfg)
    rec = failed.finish(error=RuntimeError("token=s3cr3t"))
    assert (rec["status"], rec["exit_code"], rec["error"]) == ("error", 1, "RuntimeError")
    text = (root / "logs" / "ledger.jsonl").read_text()
    assert "s3cr3t" not in text
    report = chain.verify(root / "logs" / "ledger.jsonl")
    assert report.ok and [r["stage"] for r in report.records] == ["evaluate", "train", "register"]


def test_the_ledger_can_be_off_and_a_write_failure_does_not_fail_the_stage(project_cfg, caplog, monkeypatch):
    root, load = project_cfg
    off = ledger.StageRun("prepare")
    off.configured(load("audit.ledger=false"))
    assert off.finish({}) is None and not (root / "logs").exists()

    (root / "blocked").write_text("a file where the logs folder should be")
    monkeypatch.setattr(ledger, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="aiinfra.governance.ledger"):
        for _ in range(2):
            run = ledger.StageRun("prepare")
            run.configured(load("paths.logs=blocked/logs"))
            assert run.finish({"ok": 1}) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "the run ledger was not written" in warnings[0]


def test_every_job_of_a_sweep_appends_its_own_record(tmp_path):
    """``aiinfra prepare -m seed=1,2``: two jobs, two records, each with the job's command."""
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copytree(REPO / "conf", root / "conf")
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    proc = subprocess.run(
        [sys.executable, "-m", "aiinfra", "prepare", "-m", "seed=1,2"],
        cwd=root,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in (root / "logs" / "ledger.jsonl").read_text().splitlines()]
    assert [(r["seq"], r["command"], r["status"]) for r in records] == [
        (0, "aiinfra prepare seed=1", "ok"),
        (1, "aiinfra prepare seed=2", "ok"),
    ]
    assert records[0]["outputs"]["data/prepared"] != records[1]["outputs"]["data/prepared"]  # other split
    assert records[0]["config_hash"] != records[1]["config_hash"]
    assert records[0]["results"]["rows_train"] > 0
