"""Helpers for the object-store tests (imported by name): this process pointed at the session's
moto server, a server subprocess with a chosen environment, a moto server that checks keys."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from project_helpers import cli_env, free_port, wait_ready

#: a secret that must never appear in any message, log line or output
SECRET = "s3cr3t-never-printed-Zq8"


def clear_s3fs_cache() -> None:
    """s3fs keeps one client per set of arguments for the life of the process; a test that
    changes the environment (another endpoint) needs a new one."""
    import fsspec
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    fsspec.config.conf.pop("s3", None)


@pytest.fixture
def s3_env(s3_server, monkeypatch) -> Iterator[dict[str, str]]:
    """This process talks to the session's S3 server (its endpoint and test keys in os.environ)."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    clear_s3fs_cache()
    yield s3_server.env
    clear_s3fs_cache()


def keys(s3_server, bucket: str, prefix: str = "") -> list[str]:
    """Every object key under ``prefix`` in ``bucket`` (boto3, not aiinfra's code)."""
    client = s3_server.client()
    out: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.extend(obj["Key"] for obj in page.get("Contents", []))
    return sorted(out)


class Serve:
    """``aiinfra serve`` in ``project`` with exactly the environment ``env`` (output to a file)."""

    def __init__(self, project: Path, overrides: list[str], env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = project / f"serve-{self.port}.out"
        self._out = self.output.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiinfra", "serve", f"server.port={self.port}", *overrides],
            cwd=project,
            env=cli_env(project, **env),
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def wait(self, timeout: float = 120) -> Serve:
        wait_ready(self.url, self.proc, self.output, timeout=timeout)
        return self

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._out.close()
        return rc

    def text(self) -> str:
        return self.output.read_text(errors="replace")


class AuthMotoServer:
    """A second moto S3 server, in its own process, that checks access keys
    (``INITIAL_NO_AUTH_ACTION_COUNT=0``: moto's IAM authentication from the first request). Its
    own process: moto's setting is process-wide and the session's server must keep accepting any
    key."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="0")
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1).close()
                return
            except OSError:
                assert self.proc.poll() is None, "moto server exited"
                assert time.monotonic() < deadline, "moto server not up in 30 s"
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
