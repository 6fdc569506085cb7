"""Fixes of the object-storage review: errors of a dead store are errors (not "no data"), a
failed write leaves no object, nothing secret in a message or a lasting record."""

from __future__ import annotations

import pytest

from aiinfra.errors import StorageError
from aiinfra.storage import urls
from project_helpers import free_port
from s3_helpers import SECRET, clear_s3fs_cache, keys, s3_env  # noqa: F401 - s3_env is a fixture


@pytest.fixture
def dead_endpoint(request, monkeypatch):
    """This process pointed at a port where nobody listens (and a secret key to leak)."""
    request.getfixturevalue("s3_env")
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    clear_s3fs_cache()
    import fsspec

    fsspec.config.conf["s3"] = {"config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}}
    yield dead
    clear_s3fs_cache()


@pytest.mark.parametrize("probe", [urls.exists, urls.isfile, urls.isdir])
def test_an_unreachable_store_is_an_error_not_a_missing_object(dead_endpoint, probe):
    with pytest.raises(StorageError) as err:
        probe("s3://review-dead/prepared/meta.json")
    assert "s3://review-dead/prepared/meta.json" in str(err.value)
    assert SECRET not in str(err.value) + str(err.value.hint)


@pytest.mark.usefixtures("s3_env")
def test_probes_see_an_object_written_by_another_client_after_a_listing(s3_server):
    base = s3_server.bucket("review-probe-cache")
    assert not urls.exists(f"{base}/p/one.txt") and urls.glob(base, "p/*.txt") == []
    s3_server.client().put_object(Bucket="review-probe-cache", Key="p/one.txt", Body=b"1")
    assert urls.exists(f"{base}/p/one.txt") and urls.isfile(f"{base}/p/one.txt") and urls.isdir(f"{base}/p")
    assert not urls.isdir(f"{base}/p/one.txt") and not urls.isfile(f"{base}/p")


@pytest.mark.usefixtures("s3_env")
def test_a_failed_write_leaves_no_object(s3_server):
    base = s3_server.bucket("review-failed-write")
    with pytest.raises(RuntimeError), urls.open_file(f"{base}/half.bin", "wb") as f:
        f.write(b"x" * 1000)
        raise RuntimeError("the writer died half-way")
    with urls.open_file(f"{base}/whole.bin", "wb") as f:
        f.write(b"y" * 1000)
    assert keys(s3_server, "review-failed-write") == ["whole.bin"]


@pytest.mark.usefixtures("s3_env")
def test_a_failed_frame_write_leaves_no_object(s3_server):
    import pandas as pd

    from aiinfra.data.prepared import write_frame

    base = s3_server.bucket("review-failed-frame")
    frame = pd.DataFrame({"x": [1, 2], "bad": [object(), object()]})  # pyarrow cannot convert it
    with pytest.raises(Exception):  # noqa: B017, PT011 - pyarrow's own error; the point is what is left
        write_frame(frame, f"{base}/train.parquet")
    assert keys(s3_server, "review-failed-frame") == []


def test_a_library_error_text_is_not_repeated():
    # botocore's ParamValidationError echoes the request's parameters (here a key-like value)
    import botocore.exceptions as bx

    with pytest.raises(StorageError) as err, urls.storage_errors(f"s3://b/k?X-Amz-Signature={SECRET}", "source.path"):
        raise bx.ParamValidationError(report=f"Invalid SSECustomerKey {SECRET}")
    text = str(err.value) + str(err.value.hint)
    assert SECRET not in text and "ParamValidationError" in text and "s3://b/k" in text and "source.path" in text
    with pytest.raises(OSError) as err, urls.storage_errors("/tmp/local/file"):  # local: its own message
        raise OSError("disk full")
    assert "disk full" in str(err.value)
    with pytest.raises(KeyError), urls.storage_errors("s3://b/k"):  # a bug is not a storage error
        raise KeyError("x")


@pytest.mark.usefixtures("s3_env")
def test_concurrent_sweepers_audit_each_partition_once(s3_server, tmp_path):
    import datetime as dt
    import threading
    from types import SimpleNamespace

    from aiinfra.serving import retention
    from aiinfra.serving.schema import HttpServerConfig, LogPrivacyConfig

    base = s3_server.bucket("review-retention-race")
    old = [f"2026-10-{d:02d}" for d in range(1, 7)]
    for d in old:
        for h in range(3):
            urls.write_bytes(f"{base}/predictions/date={d}/hour={h:02d}/part-1.parquet", b"")
    server = HttpServerConfig(log_privacy=LogPrivacyConfig(retention_days=10))
    server.log_dir, server.feedback_dir = f"{base}/predictions", f"{base}/feedback"
    cfg = SimpleNamespace(server=server, paths=SimpleNamespace(logs=str(tmp_path / "logs")))
    now = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
    start, results = threading.Barrier(4), []

    def sweeper() -> None:
        start.wait()
        results.append(retention.sweep(cfg, now=now))

    threads = [threading.Thread(target=sweeper) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 4
    swept = sorted(d["path"] for r in results for d in r)
    assert swept == [f"{base}/predictions/date={d}" for d in old]  # each partition by one sweeper
    assert (tmp_path / "logs" / "audit.jsonl").read_text().count("log_partition_deleted") == len(old)
    assert keys(s3_server, "review-retention-race") == []  # the claims too


@pytest.mark.usefixtures("s3_env")
def test_feedback_labels_go_to_the_bucket_where_retention_looks(s3_server, tmp_path):
    from types import SimpleNamespace

    import numpy as np
    import pyarrow.parquet as pq

    from aiinfra.serving import retention, state
    from aiinfra.serving.feedback import FeedbackStore
    from aiinfra.serving.schema import HttpServerConfig

    base = s3_server.bucket("review-feedback")
    server = HttpServerConfig()
    server.feedback_dir = f"{base}/fb/"
    cfg = SimpleNamespace(server=server, paths=SimpleNamespace(logs=str(tmp_path / "logs")))
    where = state.feedback_dir(cfg)
    assert where == f"{base}/fb" and retention.log_dirs(cfg)[1] == where
    stored = FeedbackStore(where).write(["r-1", "r-2"], np.array([1, 0]), "y", "m", "3")
    assert stored.startswith(f"{base}/fb/date=") and not (tmp_path / "s3:").exists()
    (key,) = keys(s3_server, "review-feedback")
    assert key == stored.split("/", 3)[3]
    with urls.open_file(stored) as f:
        assert pq.read_table(f).column("y").to_pylist() == [1, 0]


URL_RULE_CASES = [
    (["paths.models=s3://bkt/models"], "paths.models: must be a local directory, got the URL s3://bkt/models"),
    (["paths.logs=s3://bkt/logs"], "paths.logs: must be a local directory"),
    (["server.log_spool_dir=s3://bkt/spool"], "server.log_spool_dir: must be a local directory"),
    (["monitor.report_dir=gs://bkt/reports"], "monitor.report_dir: must be a local directory"),
    (
        ["source=csv", f"source.path=s3://AKIA:{SECRET}@bkt/raw.csv", "source.target=y"],
        "source.path: must not carry a user or password",
    ),
    ([f"paths.prepared=s3://AKIA:{SECRET}@bkt/prepared"], "paths.prepared: must not carry a user or password"),
    ([f"server.log_dir=https://u:{SECRET}@host/logs"], "server.log_dir: must not carry a user or password"),
]


@pytest.mark.parametrize(("overrides", "message"), URL_RULE_CASES)
def test_url_rules_fail_validation_naming_the_key_and_no_secret(overrides, message):
    from aiinfra.config.compose import compose
    from aiinfra.config.validate import validate
    from aiinfra.errors import ConfigError
    from aiinfra.plugins.manager import build_plugin_manager
    from project_helpers import REPO

    with pytest.raises(ConfigError) as err:
        validate(compose(overrides, REPO / "conf"), build_plugin_manager().registry)
    text = f"{err.value} {err.value.hint}"
    assert str(err.value).startswith(message), text
    assert SECRET not in text
    if "local directory" in message:
        assert "paths.prepared" in text and "server.feedback_dir" in text  # where a URL does go


def test_url_settings_that_are_allowed_still_validate():
    from aiinfra.config.compose import compose
    from aiinfra.config.validate import validate
    from aiinfra.plugins.manager import build_plugin_manager
    from project_helpers import REPO

    overrides = [
        "paths.prepared=s3://bkt/prepared",
        "server.feedback_dir=s3://bkt/fb",
        "tracking.uri=postgresql://mlflow:pw@db/mlflow",  # a database URI keeps its driver's password
    ]
    cfg = validate(compose(overrides, REPO / "conf"), build_plugin_manager().registry)
    assert cfg.paths.prepared == "s3://bkt/prepared"


def _csv(rows: int = 60) -> bytes:
    lines = ["a,b,species"] + [f"{i * 0.5},{(i * 7) % 11},{'xyz'[i % 3]}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def test_a_presigned_source_leaves_no_signature_in_lasting_records(project, s3_server):
    from botocore.config import Config

    from project_helpers import run_cli

    s3_server.bucket("review-presigned")
    client = s3_server.client(Config(signature_version="s3v4"))
    client.put_object(Bucket="review-presigned", Key="raw/iris.csv", Body=_csv())
    signed = client.generate_presigned_url("get_object", Params={"Bucket": "review-presigned", "Key": "raw/iris.csv"})
    assert "X-Amz-Signature=" in signed
    signature = signed.split("X-Amz-Signature=", 1)[1].split("&", 1)[0]
    proc = run_cli(
        project,
        "prepare",
        "source=csv",
        f"source.path='{signed}'",
        "source.target=species",
        timeout=300,
        **s3_server.env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    meta = (project / "data" / "prepared" / "meta.json").read_text()
    assert signature not in meta and signed.split("?", 1)[0] in meta
    records = [p for p in (project / "logs").rglob("*") if p.is_file()]
    assert records and not [p for p in records if signature in p.read_text(errors="replace")]
    assert signature not in proc.stdout + proc.stderr


def test_lineage_is_redacted_and_a_rotated_signature_is_the_same_source(tmp_path):
    from aiinfra.data.prepared import PreparedData, lineage_config
    from aiinfra.data.schema import FileSourceConfig
    from aiinfra.errors import DataValidationError

    first = FileSourceConfig(type="csv", path=f"https://h/b/k.csv?X-Amz-Signature={SECRET}", target="y")
    recorded = lineage_config(first)
    assert recorded["path"] == "https://h/b/k.csv" and SECRET not in str(recorded)
    # meta.json of an older prepare kept the signature: it is not handed on, and a rotated one
    # is the same source (mismatch=fail would raise on "another source")
    data = PreparedData(tmp_path, {"source_config": {**recorded, "path": first.path}})
    rotated = FileSourceConfig(
        type="csv", path="https://h/b/k.csv?X-Amz-Signature=rotated", target="y", mismatch="fail"
    )
    assert data.source(rotated) == recorded
    other = FileSourceConfig(type="csv", path="https://h/b/other.csv?X-Amz-Signature=x", target="y", mismatch="fail")
    with pytest.raises(DataValidationError) as err:
        data.source(other)
    assert "other.csv" in str(err.value) and SECRET not in str(err.value) and "X-Amz" not in str(err.value)


def test_run_params_are_redacted():
    from types import SimpleNamespace

    from aiinfra.tracking.run import config_params

    cfg = SimpleNamespace(seed=1, model={}, trainer={}, data={}, split={})
    params = config_params(cfg, source={"type": "csv", "path": f"s3://b/k.csv?X-Amz-Security-Token={SECRET}"})
    assert params["source.path"] == "s3://b/k.csv"


def test_dead_endpoint_without_preflight_is_one_error_line(project, s3_server):
    from project_helpers import run_cli

    dead = f"http://127.0.0.1:{free_port()}"
    env = {**s3_server.env, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ENDPOINT_URL": dead, "MLFLOW_S3_ENDPOINT_URL": dead}
    env["AWS_MAX_ATTEMPTS"] = "1"
    proc = run_cli(
        project,
        "train",
        "storage.preflight=false",
        "storage.connect_timeout_s=1",
        "paths.prepared=s3://review-dead-endpoint/prepared",
        timeout=300,
        **env,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in out and SECRET not in out, out
    errors = [line for line in proc.stderr.splitlines() if line.startswith("aiinfra: error:")]
    assert len(errors) == 1 and "s3://review-dead-endpoint/prepared" in errors[0], out


def test_prediction_log_health_shows_the_type_and_redacted_url_only(dead_endpoint):
    import numpy as np

    from aiinfra.serving.predlog import PredictionLog

    log = PredictionLog("s3://review-dead-log/predictions", ["a"], flush_rows=10**6, flush_interval_s=3600)
    try:
        log.append("r1", "m", "1", np.array([[1.0]], np.float32), np.array([0]), np.array([0.9]))
        assert log.flush() == 0 and log.failing
        error = log.health()["error"]
        name, _, where = error.partition(" writing ")
        assert name.isidentifier() and where == "s3://review-dead-log/predictions", error
    finally:
        log.close()


def test_the_endpoint_in_messages_has_no_user_or_password(monkeypatch):
    from aiinfra.storage.endpoint import endpoint

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://minio:{SECRET}@127.0.0.1:9000")
    assert endpoint() == "http://127.0.0.1:9000"
