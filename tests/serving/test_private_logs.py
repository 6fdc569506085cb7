"""Private prediction logs (server.log_privacy): column policies, encryption at rest, retention.

The end-to-end test runs a real server on a mixed-type model with ``hash`` on ``city`` (and on
``request_id``), ``redact`` on ``note``, ``drop`` on ``income`` and encryption on, sends rows and
labels carrying marker values, stops the server and then reads every byte under the log, feedback
and spool directories: no marker, no key. The same markers *are* found in a plaintext control run
(so the search can fail). Then ``aiinfra monitor`` reads the encrypted window and its feedback
(joined through the hashed request ids) and deletes an expired partition, naming it in the audit
log; the retrain export reads the encrypted feedback.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import httpx
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinfra.errors import AiinfraError, ConfigError
from aiinfra.serving import log_crypto, retention
from aiinfra.serving.predlog import PredictionLog
from aiinfra.serving.privacy import REDACTED, LogPrivacy, hash_array, hmac_hex, redact_array
from aiinfra.serving.schema import HttpServerConfig, LogPrivacyConfig
from raw_helpers import make_raw_model, raw_table, records, request_rows
from serving_helpers import AIINFRA, ServerProcess, env_for

HMAC_KEY = "hmac-" + "k3y" * 8
MASTER = base64.b64encode(b"M" * 7 + os.urandom(25)).decode()
MASTER_KEYS = f"footer:{MASTER}"
KEYS_ENV = {"AIINFRA_LOG_HMAC_KEY": HMAC_KEY, "AIINFRA_LOG_MASTER_KEYS": MASTER_KEYS}
MARK_CITY, MARK_NOTE, MARK_RID = "Zqxcitymark", "zqxnotemark fee", "zqxridmark"
INCOME = 987654.25  # a dropped column's value: searched as its 8 IEEE-754 bytes
POLICIES = "server.log_privacy.columns={city:hash,note:redact,income:drop,request_id:hash}"


# --- the policies, in process -------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=30)), min_size=1, max_size=40))
def test_hash_is_deterministic_per_key_and_redact_keeps_nulls(values):
    arr = pa.array(values, pa.string())
    once, again = hash_array(arr, b"k" * 32).to_pylist(), hash_array(arr, b"k" * 32).to_pylist()
    other = hash_array(arr, b"j" * 32).to_pylist()
    assert once == again
    for v, h, o in zip(values, once, other, strict=True):
        assert (h is None) == (v is None)
        if v is not None:
            assert h != v and len(h) == 64 and h != o  # another key, another hash
            assert h == hmac_hex(b"k" * 32, v)  # the standard HMAC-SHA256 (the fast path equals it)
    assert [x == y for x in values for y in values] == [x == y for x in once for y in once]  # joins keep working
    redacted = redact_array(arr).to_pylist()
    assert redacted == [None if v is None else REDACTED for v in values]


def _server_cfg(**privacy) -> HttpServerConfig:
    return HttpServerConfig(log_privacy=LogPrivacyConfig(**privacy))


def test_start_errors_name_the_column_or_the_variable_never_the_key(monkeypatch):
    monkeypatch.setenv("AIINFRA_LOG_HMAC_KEY", HMAC_KEY)
    with pytest.raises(ConfigError) as err:
        LogPrivacy.from_config(_server_cfg(columns={"citty": "hash"}), ["city", "note"])
    assert "'citty'" in err.value.message and "city" in str(err.value.hint) and "did you mean" in str(err.value).lower()
    with pytest.raises(ConfigError, match="break the join"):
        LogPrivacy.from_config(_server_cfg(columns={"request_id": "drop"}), ["city"])
    monkeypatch.delenv("AIINFRA_LOG_HMAC_KEY")
    with pytest.raises(ConfigError, match="AIINFRA_LOG_HMAC_KEY"):
        LogPrivacy.from_config(_server_cfg(default="hash"), ["city"])
    monkeypatch.setenv("AIINFRA_LOG_MASTER_KEYS", "footer:c2hvcnQ=")  # 5 bytes: not an AES key
    with pytest.raises(ConfigError) as err:
        LogPrivacy.from_config(_server_cfg(encrypt=True), ["city"])
    assert "AIINFRA_LOG_MASTER_KEYS" in str(err.value) and "c2hvcnQ" not in str(err.value)
    monkeypatch.setenv("AIINFRA_LOG_MASTER_KEYS", f"other:{MASTER}")
    with pytest.raises(ConfigError, match="no master key 'footer'") as err:
        LogPrivacy.from_config(_server_cfg(encrypt=True), ["city"])
    assert MASTER not in str(err.value)


def test_a_part_written_with_one_master_key_does_not_open_with_another(tmp_path, monkeypatch):
    monkeypatch.setenv("AIINFRA_LOG_MASTER_KEYS", MASTER_KEYS)
    cfg = _server_cfg(encrypt=True)
    path = tmp_path / "part-x.parquet"
    pq.write_table(pa.table({"a": ["v"]}), path, encryption_properties=log_crypto.encryption_properties(cfg))
    assert log_crypto.is_encrypted(path) and log_crypto.read_parquet(path, cfg).column("a").to_pylist() == ["v"]
    monkeypatch.setenv("AIINFRA_LOG_MASTER_KEYS", f"footer:{log_crypto.generate_key()}")
    with pytest.raises((AiinfraError, OSError)) as err:
        log_crypto.read_parquet(path, cfg)
    assert MASTER not in str(err.value)


def _all_bytes(*roots: Path) -> tuple[bytes, int]:
    blob, files = b"", 0
    for root in roots:
        for f in Path(root).rglob("*"):
            if f.is_file():
                blob += f.read_bytes()
                files += 1
    return blob, files


def _secrets_in(blob: bytes, extra: tuple[bytes, ...] = ()) -> list[bytes]:
    needles = [MARK_CITY.encode(), MARK_NOTE.encode(), MARK_RID.encode(), np.float64(INCOME).tobytes(), *extra]
    needles += [MARK_CITY.encode("utf-16-le"), HMAC_KEY.encode(), MASTER.encode(), base64.b64decode(MASTER)]
    return [n for n in needles if n in blob]


def test_the_spool_only_ever_receives_protected_encrypted_parts(tmp_path, monkeypatch):
    monkeypatch.setenv("AIINFRA_LOG_HMAC_KEY", HMAC_KEY)
    monkeypatch.setenv("AIINFRA_LOG_MASTER_KEYS", MASTER_KEYS)
    privacy = LogPrivacy.from_config(
        _server_cfg(columns={"a": "hash", "request_id": "hash"}, default="redact", encrypt=True), ["a", "b"]
    )
    broken = tmp_path / "not-a-dir"
    broken.write_text("a file where the log directory should be")  # every write to the log fails
    log = PredictionLog(broken, ["a", "b"], policy="spool", spool_dir=tmp_path / "spool", privacy=privacy)
    x = np.array([[INCOME, INCOME]] * 3, dtype=np.float32)
    log.append(f"{MARK_RID}-1", "m", "1", x, np.zeros(3, int), np.ones(3))
    assert log.flush() == 0 and log.spooled_rows == 3
    blob, files = _all_bytes(tmp_path / "spool")
    assert files == 1 and blob.endswith(b"PARE")
    assert _secrets_in(blob, (np.float32(INCOME).tobytes(),)) == []
    broken.unlink()  # the disk is back: the replay reads the encrypted footer (row count) and moves the part
    assert log._replay() == 3
    log.close()
    table = pq.read_table(next(broken.rglob("part-*.parquet")), **privacy.read_options())
    assert table.column("b").to_pylist() == [REDACTED] * 3 and len(table.column("a")[0].as_py()) == 64


# --- retention, in process ------------------------------------------------------------------


def test_retention_deletes_old_partitions_only_and_audits_each(tmp_path):
    import datetime as dt
    from types import SimpleNamespace

    pred, fb = tmp_path / "logs" / "predictions", tmp_path / "logs" / "feedback"
    for d in ("2026-11-01", "2026-11-20", "2026-11-21", "2026-12-01"):
        (pred / f"date={d}" / "hour=00").mkdir(parents=True)
        pq.write_table(pa.table({"x": [1, 2]}), pred / f"date={d}" / "hour=00" / "part-1.parquet")
    (fb / "date=2026-10-01").mkdir(parents=True)
    (pred / "date=garbage").mkdir()
    server = _server_cfg(retention_days=10)
    server.log_dir, server.feedback_dir = str(pred), str(fb)
    cfg = SimpleNamespace(server=server, paths=SimpleNamespace(logs=str(tmp_path / "logs")))
    deleted = retention.sweep(cfg, now=dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC))
    assert sorted(Path(d["path"]).name for d in deleted) == ["date=2026-10-01", "date=2026-11-01", "date=2026-11-20"]
    assert sorted(p.name for p in pred.iterdir()) == ["date=2026-11-21", "date=2026-12-01", "date=garbage"]
    audit = (tmp_path / "logs" / "audit.jsonl").read_text()
    assert audit.count("log_partition_deleted") == 3 and str(pred / "date=2026-11-01") in audit
    rows = {Path(d["path"]).name: d["rows"] for d in deleted}
    assert rows["date=2026-11-01"] == 2 and rows["date=2026-10-01"] == 0
    assert retention.sweep(cfg, now=dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)) == []  # nothing twice


# --- a real server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_model(tmp_path_factory) -> Path:
    return make_raw_model(tmp_path_factory.mktemp("private") / "model")


def _rows_with_markers() -> list[dict]:
    recs = records(request_rows(12, seed=3))
    for r in recs[:4]:
        r["city"], r["note"], r["income"] = MARK_CITY, MARK_NOTE, INCOME
    return recs


def _serve(start_server, raw_model, tmp: Path, overrides: list[str], env: dict, name: str) -> ServerProcess:
    return start_server(
        [
            f"server.model_uri={raw_model}",
            f"server.feedback_dir={tmp / 'feedback'}",
            "server.log_failure_policy=spool",
            f"server.log_spool_dir={tmp / 'spool'}",
            "server.log_flush_interval_s=0.2",
            "server.access_log=null",
            *overrides,
        ],
        env=env,
        name=name,
    )


def _traffic(srv: ServerProcess) -> None:
    recs = _rows_with_markers()
    for i in range(3):
        r = httpx.post(
            f"{srv.url}/invocations",
            content=orjson.dumps({"dataframe_records": recs}),
            headers={"Content-Type": "application/json", "X-Request-ID": f"{MARK_RID}-{i}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
    labels = [{"request_id": f"{MARK_RID}-{i}", "label": i % 2} for i in range(3)]
    r = httpx.post(f"{srv.url}/v2/models/model/feedback", json={"labels": labels}, timeout=30)
    assert r.status_code == 200, r.text


def _prepared(root: Path, model: Path) -> Path:
    """reference.parquet, meta.json and contract.json of the raw model, as ``prepare`` writes them."""
    out = root / "data" / "prepared"
    out.mkdir(parents=True)
    frame = raw_table(400)
    frame.to_parquet(out / "reference.parquet", index=False)
    (out / "contract.json").write_bytes((model / "contract.json").read_bytes())
    meta = {"features": json.loads((model / "model.json").read_text())["features"], "target": "target"}
    meta.update(classes=[0, 1], task="binary", dataset_hash="private", rows={"reference": len(frame)})
    (out / "meta.json").write_text(json.dumps(meta))
    return out


def test_a_plaintext_search_of_the_encrypted_logs_finds_nothing(
    start_server, raw_model, tmp_path, serving_project, monkeypatch
):
    private, plain = tmp_path / "private", tmp_path / "plain"
    srv = _serve(start_server, raw_model, private, [POLICIES, "server.log_privacy.encrypt=true"], KEYS_ENV, "priv")
    _traffic(srv)
    assert srv.stop() == 0, srv.text()
    assert HMAC_KEY not in srv.text() and MASTER not in srv.text()
    blob, files = _all_bytes(srv.log_dir, private / "feedback", private / "spool")
    assert files >= 2, "the server wrote no parts: the search would pass vacuously"
    assert _secrets_in(blob) == [], "protected values or keys found in the log files"

    # the control: the same traffic with every column kept, in plaintext: the markers are there
    ctl = _serve(start_server, raw_model, plain, [], {}, "plain")
    _traffic(ctl)
    assert ctl.stop() == 0, ctl.text()
    found = _secrets_in(_all_bytes(ctl.log_dir, plain / "feedback")[0])
    assert MARK_CITY.encode() in found and MARK_NOTE.encode() in found and MARK_RID.encode() in found

    # the monitor reads the encrypted window and its labels (joined through the hashed request ids),
    # skips the protected columns with a note, and deletes an expired partition (audit log)
    old = srv.log_dir / "date=2020-01-01" / "hour=00"
    old.mkdir(parents=True)
    part = next(srv.log_dir.rglob("part-*.parquet"))
    (old / part.name).write_bytes(part.read_bytes())
    root = tmp_path / "project"
    prepared = _prepared(root, raw_model)
    common = [
        f"paths.prepared={prepared}",
        f"paths.logs={root / 'logs'}",
        f"server.log_dir={srv.log_dir}",
        f"server.feedback_dir={private / 'feedback'}",
        POLICIES,
        "server.log_privacy.encrypt=true",
        "server.log_privacy.retention_days=30",
        f"monitor.report_dir={root / 'reports'}",
        "monitor.report=false",
    ]
    proc = subprocess.run(
        [*AIINFRA, "monitor", *common, f"monitor.feedback={private / 'feedback'}"],
        cwd=serving_project,
        env=env_for(serving_project, **KEYS_ENV),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdict = json.loads((root / "reports" / "verdict.json").read_text())
    assert verdict["rows"]["current"] == 36
    skipped = verdict["skipped_columns"]
    assert {"city", "note", "income"} <= set(skipped) and "hash" in skipped["city"], skipped
    assert verdict["columns"]["age"]["method"] != "skipped"
    assert verdict["feedback"]["labelled_rows"] == 36  # 3 request ids x 12 rows, joined through their hashes
    assert not old.parent.exists()
    audit = (root / "logs" / "audit.jsonl").read_text()
    assert "log_partition_deleted" in audit and str(old.parent) in audit

    # the retrain export reads the encrypted feedback (in process, with the same config)
    from aiinfra.config.compose import compose
    from aiinfra.config.validate import validate
    from aiinfra.monitoring import retrain, windows
    from aiinfra.plugins.manager import get_plugins

    for k, v in KEYS_ENV.items():
        monkeypatch.setenv(k, v)
    overrides = [*common, f"monitor.feedback={private / 'feedback'}", f"paths.feedback={root / 'inbox'}"]
    cfg = validate(compose(overrides, serving_project / "conf"), get_plugins().registry)
    exported = pq.read_table(retrain.export_window(cfg, windows.open_current(cfg), "t"))
    assert exported.num_rows == 36 and exported.column("target").null_count == 0
    assert exported.column("city").null_count == 36 and exported.column("age").null_count == 0


def test_the_server_refuses_to_start_without_its_keys(raw_model, serving_project):
    def serve(env: dict) -> subprocess.CompletedProcess:
        args = [*AIINFRA, "serve", f"server.model_uri={raw_model}", "server.port=0", POLICIES]
        args.append("server.log_privacy.encrypt=true")
        return subprocess.run(
            args, cwd=serving_project, env=env_for(serving_project, **env), capture_output=True, text=True, timeout=120
        )

    no_hmac = serve({"AIINFRA_LOG_MASTER_KEYS": MASTER_KEYS})
    assert no_hmac.returncode == 2, no_hmac.stderr
    assert "AIINFRA_LOG_HMAC_KEY" in no_hmac.stderr and "Traceback" not in no_hmac.stderr
    assert MASTER not in no_hmac.stdout + no_hmac.stderr
    no_master = serve({"AIINFRA_LOG_HMAC_KEY": HMAC_KEY})
    assert no_master.returncode == 2, no_master.stderr
    assert "AIINFRA_LOG_MASTER_KEYS" in no_master.stderr and "Traceback" not in no_master.stderr
    assert HMAC_KEY not in no_master.stdout + no_master.stderr
    assert [ln for ln in no_master.stderr.splitlines() if "error" in ln.lower()][:1], no_master.stderr
