"""Fault tests of the pipeline stages, with real processes: the MLflow store locked by another
process, a store that cannot be opened, signals during training, a process that dies without
closing its run. Each runs the real CLI in a fresh project (the repo's conf/, a migrated sqlite
store, the bundled breast-cancer data prepared once)."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from project_helpers import REPO, cli_env, project_client, run_cli

pytestmark = pytest.mark.slow

# (sqlite: MLflow waits up to 20 s on a locked database before it raises; a lock held longer than
# that is what used to fail the training with a 90-557-line traceback)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, mlflow_db_template) -> Path:
    root = _copy_project(tmp_path_factory.mktemp("prepared") / "proj", mlflow_db_template, None)
    run_cli(root, "prepare", check=True)
    return root / "data" / "prepared"


def _copy_project(root: Path, db: Path, prepared: Path | None) -> Path:
    root.mkdir(parents=True)
    shutil.copytree(REPO / "conf", root / "conf")
    shutil.copy(db, root / "mlflow.db")
    if prepared is not None:
        shutil.copytree(prepared, root / "data" / "prepared")
    return root


@pytest.fixture
def new_project(tmp_path, mlflow_db_template, prepared):
    def make(name: str) -> Path:
        return _copy_project(tmp_path / name, mlflow_db_template, prepared)

    return make


def _train(root: Path, *overrides: str, **env: str) -> subprocess.Popen:
    log = (root / "train.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "aiinfra", "train", "trainer.checkpoint.enabled=false", *overrides],
        cwd=root,
        env=cli_env(root, **env),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _runs(root: Path) -> list[tuple[str, str]]:
    """(run id, status) of every run in the project's store, read with sqlite directly."""
    with sqlite3.connect(root / "mlflow.db", timeout=60) as db:
        return [tuple(r) for r in db.execute("SELECT run_uuid, status FROM runs ORDER BY start_time")]


def _epochs_logged(root: Path) -> int:
    with sqlite3.connect(root / "mlflow.db", timeout=60) as db:
        return db.execute("SELECT COUNT(*) FROM metrics WHERE key = 'val_loss'").fetchone()[0]


def _hold_write_lock(db: Path, seconds: float) -> subprocess.Popen:
    """Another process that holds a write transaction on the store for ``seconds`` (or until killed)."""
    code = (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "print('locked', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
        "c.execute('COMMIT')\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _side_by_side(root: Path, *commands: list[str], timeout: float = 300) -> list[subprocess.CompletedProcess]:
    """``aiinfra ARGS`` for each command, all at once in ``root`` (the CLI starts overlap)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "aiinfra", *args],
            cwd=root,
            env=cli_env(root),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    done = []
    for args, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return done


def _wait_until(predicate, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)


def test_locked_store_is_retried_then_training_succeeds_or_fails_with_one_line(new_project):
    # two trainings side by side, each against a store another process holds a write lock on
    released, held = new_project("released"), new_project("held")
    holders = {root: _hold_write_lock(root / "mlflow.db", 600) for root in (released, held)}  # until ended
    try:
        ok = _train(released, "trainer.max_epochs=1", AIINFRA_TRACKING_RETRY_S="120")
        failed = _train(held, "trainer.max_epochs=1", AIINFRA_TRACKING_RETRY_S="1")
        # MLflow's own wait ran out and aiinfra is retrying: now the other process lets go
        log = released / "train.log"
        _wait_until(lambda: "is locked by another process" in log.read_text(), ok, log)
        holders[released].kill()
        assert failed.wait(timeout=300) == 2, (held / "train.log").read_text()
        assert ok.wait(timeout=300) == 0, log.read_text()
    finally:
        for holder in holders.values():
            holder.kill()
            holder.wait()

    out = (released / "train.log").read_text()
    assert "Traceback" not in out
    assert out.count("is locked by another process") == 1, out  # one line per state change
    assert "is writable again" in out
    assert [status for _, status in _runs(released)] == ["FINISHED"]
    summary = json.loads((released / "models" / "train_run.json").read_text())
    assert _runs(released)[0][0] == summary["run_id"]

    err = (held / "train.log").read_text()
    errors = [ln for ln in err.splitlines() if ln.startswith("aiinfra: error:")]
    assert len(errors) == 1, err
    assert f"the MLflow store sqlite:///{(held / 'mlflow.db').resolve()} stayed locked" in errors[0]
    assert "tracking.retry_s" in err and "Traceback" not in err
    assert not any(status == "RUNNING" for _, status in _runs(held))


def test_store_that_cannot_be_opened_is_one_error_naming_it(new_project):
    root = new_project("blocked")
    (root / "not-a-dir").write_text("a file where the store's directory should be\n")
    proc = run_cli(root, "train", "trainer.max_epochs=1", "tracking.uri=sqlite:///not-a-dir/mlflow.db")
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("aiinfra: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"cannot use the MLflow store sqlite:///{(root / 'not-a-dir' / 'mlflow.db').resolve()}" in lines[0]
    assert "hint: check that the store's path exists" in proc.stderr


def test_store_credentials_never_appear_in_the_error():
    from aiinfra.tracking.store import locked_error, redact_uri, unusable_error

    uri = "postgresql://svc:s3cr3t-pw@db.internal:5432/mlflow"
    assert redact_uri(uri) == "postgresql://svc:***@db.internal:5432/mlflow"
    for err in (locked_error(uri, "opening the run", 3.0), unusable_error(uri, "x", OSError(f"no route to {uri}"))):
        assert "s3cr3t-pw" not in str(err) and "svc:***@db.internal" in str(err)


def test_signals_during_training_end_the_run_killed_and_a_dead_process_run_is_reaped(new_project):
    """SIGTERM mid-fit ends the run KILLED (never RUNNING), exit status 143; a training killed with
    SIGKILL cannot end its run, and the next training on the host marks that run FAILED."""
    projects = {sig: new_project(sig.name) for sig in (signal.SIGTERM, signal.SIGKILL)}
    procs = {
        sig: _train(root, "trainer.max_epochs=100000", "trainer.early_stopping.enabled=false")
        for sig, root in projects.items()
    }
    try:
        for sig, proc in procs.items():
            root = projects[sig]
            _wait_until(lambda root=root: _epochs_logged(root) >= 1, proc, root / "train.log")
            proc.send_signal(sig)
        codes = {sig: proc.wait(timeout=120) for sig, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    term_log = (projects[signal.SIGTERM] / "train.log").read_text()
    assert codes[signal.SIGTERM] == 128 + signal.SIGTERM, term_log
    assert "Traceback" not in term_log
    assert [status for _, status in _runs(projects[signal.SIGTERM])] == ["KILLED"], term_log

    killed = projects[signal.SIGKILL]
    (orphan, status), *_ = _runs(killed)
    assert status == "RUNNING"  # nothing in a SIGKILLed process can run
    again = run_cli(killed, "train", "trainer.max_epochs=1", "trainer.checkpoint.enabled=false")
    assert again.returncode == 0, again.stderr
    assert f"MLflow run {orphan} was left RUNNING by process" in again.stderr
    statuses = dict(_runs(killed))
    assert statuses[orphan] == "FAILED" and list(statuses.values()).count("FINISHED") == 1


def test_train_takes_lineage_from_the_prepared_data_and_flags_a_contradicting_config(project):
    """`aiinfra prepare source=wine` then a plain `aiinfra train` (whose config says breast_cancer):
    the run records wine, with a warning; source.mismatch=fail makes it one error."""
    run_cli(project, "prepare", "source=wine", check=True)
    meta = json.loads((project / "data" / "prepared" / "meta.json").read_text())
    assert meta["source_config"]["dataset"] == "wine" and "mismatch" not in meta["source_config"]

    proc = run_cli(project, "train", "trainer.max_epochs=1", "trainer.checkpoint.enabled=false", check=True)
    assert "made from another source than this config's: source.dataset='wine' (config: 'breast_cancer')" in (
        proc.stderr
    )

    run_id = json.loads((project / "models" / "train_run.json").read_text())["run_id"]
    run = project_client(project).get_run(run_id)
    assert run.data.params["source.dataset"] == "wine"
    assert run.data.tags["aiinfra.source"] == meta["source"]

    # the strict run fails before it writes anything: the two run side by side (one CLI start less)
    strict, same = _side_by_side(
        project,
        ["train", "trainer.max_epochs=1", "source.mismatch=fail"],
        # the same source as prepared: no warning
        ["train", "source=wine", "trainer.max_epochs=1", "trainer.checkpoint.enabled=false"],
    )
    assert strict.returncode == 2, strict.stderr
    errors = [ln for ln in strict.stderr.splitlines() if ln.startswith("aiinfra: error:")]
    assert len(errors) == 1 and "source.dataset='wine' (config: 'breast_cancer')" in errors[0]
    assert same.returncode == 0 and "another source" not in same.stderr, same.stderr


def test_a_bad_mismatch_value_fails_in_validation(project):
    proc = run_cli(project, "config", "source.mismatch=ignore")
    assert proc.returncode == 2 and "source.mismatch" in proc.stderr and "warn" in proc.stderr, proc.stderr


def test_two_concurrent_registers_write_one_alias_move(new_project):
    """Two `aiinfra register` processes race on one trained model: one registers it and moves the
    alias, the other waits for the registry lock, then sees the move and writes none of its own."""
    project = new_project("race")  # the module's prepared data: no prepare run of its own
    run_cli(project, "train", "trainer.max_epochs=2", "trainer.checkpoint.enabled=false", check=True)
    run_cli(project, "evaluate", check=True)
    args = [sys.executable, "-m", "aiinfra", "register", "register.gate.min=null"]
    racers = [
        subprocess.Popen(args, cwd=project, env=cli_env(project), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300)[0].decode() for proc in racers]
    assert [proc.returncode for proc in racers] == [0, 0], outputs
    events = [json.loads(line) for line in (project / "logs" / "audit.jsonl").read_text().splitlines()]
    actions = [e["action"] for e in events]
    assert actions.count("registered") == 1 and actions.count("alias_moved") == 1, events
    moved = next(e for e in events if e["action"] == "alias_moved")

    client = project_client(project)
    name = moved["model"]
    assert str(client.get_model_version_by_alias(name, moved["alias"]).version) == moved["version"]
    assert len(client.search_model_versions(f"name='{name}'")) == 1


def test_monitor_skips_corrupt_log_parts_naming_each_and_counts_them_in_the_verdict(new_project):
    """A prediction log with good parts, a part whose footer is garbage and a part whose footer
    reads but whose data pages are damaged: the garbage one is left out with a warning naming it
    and listed in verdict.json; the damaged one, found mid-read, is one error naming it; no traceback."""
    import datetime as dt

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    project = new_project("monitor")  # the module's prepared data (its reference) copied in
    reference = pd.read_parquet(project / "data" / "prepared" / "reference.parquet")
    meta = json.loads((project / "data" / "prepared" / "meta.json").read_text())
    hour = project / "logs" / "predictions" / "date=2026-11-30" / "hour=10"
    hour.mkdir(parents=True)
    good_rows = 0
    for i in range(3):
        part = reference.iloc[i * 40 : (i + 1) * 40]
        table = pa.table(
            {
                "request_id": [f"r{i}-{j}" for j in range(len(part))],
                "timestamp": pa.array(
                    [dt.datetime(2026, 11, 30, 10, i, tzinfo=dt.UTC)] * len(part), pa.timestamp("us", "UTC")
                ),
                "model_name": ["m"] * len(part),
                "model_version": ["1"] * len(part),
                **{f: part[f].astype("float32").to_numpy() for f in meta["features"]},
                "prediction": part[meta["target"]].to_numpy(),
                "score": [0.9] * len(part),
            }
        )
        pq.write_table(table, hour / f"part-{i}.parquet", compression="snappy")
        good_rows += len(part)
    garbage = hour / "part-7.parquet"
    garbage.write_bytes(b"PAR1" + bytes(range(256)) * 4)
    damaged = hour / "part-8.parquet"
    shutil.copy(hour / "part-0.parquet", damaged)
    data = bytearray(damaged.read_bytes())
    footer = pq.read_metadata(damaged)
    first_feature = footer.schema.names.index(meta["features"][0])
    chunk = footer.row_group(0).column(first_feature)
    start = chunk.data_page_offset
    data[start : start + 32] = b"\xff" * 32  # a feature's page header; the footer stays intact
    damaged.write_bytes(bytes(data))
    assert pq.read_metadata(damaged).num_rows == 40  # its footer reads

    args = ("monitor", "monitor.report=false", "monitor.fail_on_drift=false")
    proc = run_cli(project, *args)
    # the damaged part is found mid-read: one error naming it and the mv that sets it aside
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("aiinfra: error:")]
    damaged_name = str(damaged.relative_to(project))  # paths as configured: relative to the project
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "1 damaged Parquet file(s) in prediction log" in errors[0] and damaged_name in errors[0]
    assert f"mv {damaged_name} " in proc.stderr
    damaged.rename(damaged.with_name("_" + damaged.name))  # as the hint says

    proc = run_cli(project, *args)
    assert proc.returncode == 0, proc.stderr
    garbage_name = str(garbage.relative_to(project))
    assert "Traceback" not in proc.stderr and f"skipped 1 unreadable file(s): {garbage_name}" in proc.stderr
    verdict = json.loads((project / "reports" / "drift" / "verdict.json").read_text())
    assert [entry.split(":")[0] for entry in verdict["skipped_files"]] == [garbage_name]
    assert verdict["rows"]["current"] == good_rows
