"""Bad object-store input through the real CLI, where a user sees it: exit 2, one error line naming
the URL (and the setting), no traceback, never the secret key. The preflight catches the
endpoint, the bucket and the keys before a stage runs; the source names a missing object."""

from __future__ import annotations

import time

import pytest

from project_helpers import free_port, run_cli
from s3_helpers import SECRET, AuthMotoServer


def _env(s3_server, **changes: str) -> dict[str, str]:
    return {**s3_server.env, "AWS_SECRET_ACCESS_KEY": SECRET, **changes}


def _one_error(proc) -> str:
    """The one `aiinfra: error:` line of a failed run (its hint may follow); nothing leaked."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out, out
    assert SECRET not in out, out
    errors = [line for line in proc.stderr.splitlines() if line.startswith("aiinfra: error:")]
    assert len(errors) == 1, out
    return errors[0]


def _prepare(project, source_url: str, *extra: str):
    return ("prepare", "source=csv", f"source.path={source_url}", "source.target=species", *extra)


def test_a_missing_object_names_the_url_and_the_setting(project, s3_server):
    bucket = s3_server.bucket("errors-missing-object")
    proc = run_cli(project, *_prepare(project, f"{bucket}/raw/absent.csv"), timeout=120, **_env(s3_server))
    line = _one_error(proc)
    assert "s3://errors-missing-object/raw/absent.csv" in line and "source.path" in line


def test_a_missing_bucket_is_found_by_the_preflight(project, s3_server):
    proc = run_cli(project, *_prepare(project, "s3://errors-no-such-bucket/raw.csv"), timeout=120, **_env(s3_server))
    line = _one_error(proc)
    assert "'errors-no-such-bucket'" in line and "does not exist" in line and "source.path" in line


@pytest.mark.parametrize("where", ["env", "config"])
def test_an_unreachable_endpoint_fails_within_the_connect_timeout(project, s3_server, where):
    port = free_port()  # nobody listens there
    dead = f"http://127.0.0.1:{port}"
    if where == "env":
        env, extra = _env(s3_server, AWS_ENDPOINT_URL=dead, MLFLOW_S3_ENDPOINT_URL=dead), ()
    else:  # storage.endpoint_url wins over a working endpoint in the environment
        env, extra = _env(s3_server), (f"storage.endpoint_url={dead}",)
    started = time.monotonic()
    args = _prepare(project, "s3://errors-unreachable/raw.csv", "storage.connect_timeout_s=2", *extra)
    proc = run_cli(project, *args, timeout=120, **env)
    took = time.monotonic() - started
    line = _one_error(proc)
    assert "cannot reach the object store" in line and dead in line and "s3://errors-unreachable/raw.csv" in line
    assert took < 30, f"{took:.1f} s"  # the CLI starts in ~5 s; the failed connect costs under a second


def test_refused_credentials_are_one_error_without_the_secret(project):
    # moto's IAM authentication (its own process): an unknown access key is refused (403)
    server = AuthMotoServer()
    try:
        env = {
            "AWS_ENDPOINT_URL": server.endpoint_url,
            "MLFLOW_S3_ENDPOINT_URL": server.endpoint_url,
            "AWS_ACCESS_KEY_ID": "AKIAUNKNOWNKEY000000",
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        proc = run_cli(project, *_prepare(project, "s3://errors-denied/raw.csv"), timeout=120, **env)
    finally:
        server.stop()
    line = _one_error(proc)
    assert "refused the credentials" in line and "s3://errors-denied/raw.csv" in line
    assert "AKIAUNKNOWNKEY000000" not in proc.stdout + proc.stderr


def test_a_missing_model_dir_on_s3_names_it(project, s3_server):
    bucket = s3_server.bucket("errors-model")
    proc = run_cli(project, "serve", f"server.model_uri={bucket}/models/none", timeout=120, **_env(s3_server))
    line = _one_error(proc)
    assert "s3://errors-model/models/none" in line and "server.model_uri" in line
