"""pytest plugin for aiinfra plugin authors (registered as the ``pytest11`` entry point ``aiinfra``).

Kept import-light: it is loaded in every pytest session of an environment with aiinfra installed,
so it imports only the standard library, pytest and aiinfra's light modules (the plugin manager,
the runner's process setup, the project template): no Hydra, OmegaConf, torch or pandas.

Fixtures
--------
``aiinfra_plugin_manager``
    A fresh plugin manager with entry-point autoloading off: aiinfra's built-in components only.
    It is the process-wide manager for the duration of the test (what ``aiinfra.cli`` and
    config validation use), and is dropped afterwards.
``register_plugin``
    ``register_plugin(obj)`` registers a plugin (a module, class instance or any object with
    ``@hookimpl`` functions) on that manager for one test; it is unregistered afterwards.
``s3_server``
    A real S3 API (moto's server mode, ``ThreadedMotoServer``) on 127.0.0.1, one per test
    session: ``s3_server.endpoint_url``, ``s3_server.env`` (the endpoint and test credentials, for
    subprocesses and for this process: ``monkeypatch.setattr(os, "environ", ...)`` or
    ``cli_env(**s3_server.env)``) and ``s3_server.bucket(name)``, which creates a bucket and
    returns its ``s3://name`` URL. Needs ``moto[server]`` (``pip install 'moto[server]'``).
``aiinfra_project``
    A temporary aiinfra project: a copy of a minimal ``conf/`` tree, ``git init`` + ``dvc init``,
    MLflow in a sqlite file inside it. ``aiinfra_project.run("prepare", "source=mysource")``
    runs a stage as a real ``aiinfra`` subprocess there.

Helper
------
:func:`pip_install_target` installs a plugin package into a directory (no dependencies, no build
isolation: fast and offline) so that a subprocess with that directory on ``PYTHONPATH`` sees its
entry points exactly as after ``pip install``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import aiinfra.builtin
from aiinfra import runner
from aiinfra.plugins import manager
from aiinfra.project_template import CONF_DIR


def pip_install_target(packages: Sequence[str | Path], target: str | Path, *, timeout: float = 300) -> Path:
    """``pip install --no-deps --no-build-isolation --target TARGET PACKAGES...``; returns TARGET.

    Put TARGET on ``PYTHONPATH`` of a subprocess (see :meth:`AiinfraProject.env`) to use the
    installed packages and their entry points there. Raises ``RuntimeError`` with pip's output
    when the installation fails.
    """
    target = Path(target)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-input",
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(target),
        *[str(p) for p in packages],
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"pip install failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return target


class AiinfraProject:
    """A temporary aiinfra project directory, and helpers to run the ``aiinfra`` CLI in it."""

    def __init__(self, root: Path, *, pythonpath: Sequence[str | Path] = (), env: dict[str, str] | None = None):
        self.root = Path(root)
        self.pythonpath = [str(p) for p in pythonpath]
        self.extra_env = dict(env or {})

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    @property
    def mlflow_uri(self) -> str:
        """The project's MLflow tracking URI (a sqlite file inside the project)."""
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def write_conf(self, relpath: str, text: str) -> Path:
        """Write ``conf/<relpath>`` (e.g. ``"source/mine.yaml"``) and return its path."""
        path = self.conf / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of a CLI run: this project, its MLflow store, extra PYTHONPATH."""
        runner.setup_environment()  # what every aiinfra process runs with (DO_NOT_TRACK, ...): inherited
        env = dict(os.environ)
        env.pop("AIINFRA_PROJECT_DIR", None)
        env.update({"MLFLOW_TRACKING_URI": self.mlflow_uri, "PYTHONUNBUFFERED": "1"})
        if self.pythonpath:
            env["PYTHONPATH"] = os.pathsep.join([*self.pythonpath, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env.update(self.extra_env)
        env.update(extra or {})
        return env

    def cli_command(self) -> list[str]:
        """The argv prefix that runs this environment's ``aiinfra``."""
        return [sys.executable, "-m", "aiinfra"]

    def popen(self, *args: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen:
        """Start ``aiinfra ARGS...`` in the project without waiting (servers, watchers).

        stdout and stderr go to one text pipe unless given; the caller stops the process.
        """
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.STDOUT)
        kwargs.setdefault("text", True)
        return subprocess.Popen([*self.cli_command(), *args], cwd=self.root, env=self.env(env), **kwargs)

    def cli(
        self, *args: str, env: dict[str, str] | None = None, check: bool = False, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run ``aiinfra ARGS...`` in the project (a real subprocess); output is captured as text.

        ``check=True`` raises ``AssertionError`` with the output when the exit status is not 0.
        """
        proc = subprocess.run(
            [*self.cli_command(), *args],
            cwd=self.root,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"`aiinfra {' '.join(args)}` exited with {proc.returncode}\n"
                f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
            )
        return proc

    def run(self, stage: str, *overrides: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a stage, ``aiinfra <stage> OVERRIDES...``; same keywords as :meth:`cli`."""
        return self.cli(stage, *overrides, **kwargs)


def make_project(
    root: Path,
    *,
    conf: str | Path | None = None,
    git: bool = True,
    dvc: bool = True,
    pythonpath: Sequence[str | Path] = (),
) -> AiinfraProject:
    """Create an aiinfra project in ``root``: ``conf/`` copied from ``conf`` (default: aiinfra's
    minimal template), then ``git init`` and ``dvc init`` unless turned off."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(Path(conf) if conf else CONF_DIR, root / "conf", ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".gitignore").write_text(
        "/mlflow.db\n/mlartifacts/\n/data/\n/models/\n/checkpoints/\n/logs/\n/reports/\n/.aiinfra/\n"
    )
    if git:
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    if dvc:
        subprocess.run(
            [sys.executable, "-m", "dvc", "init", "-q"] + ([] if git else ["--no-scm"]),
            cwd=root,
            check=True,
            env={**os.environ, "DVC_NO_ANALYTICS": "1"},
        )
    return AiinfraProject(root, pythonpath=pythonpath)


@pytest.fixture
def aiinfra_plugin_manager() -> Iterator[Any]:
    """A fresh plugin manager (built-ins only, no entry points), process-wide for one test."""
    previous = manager._cached
    plugins = manager.build_plugin_manager(load_entrypoints=False, plugins=[aiinfra.builtin])
    manager.reset_plugins(plugins)
    try:
        yield plugins
    finally:
        manager.reset_plugins(previous)


@pytest.fixture
def register_plugin(aiinfra_plugin_manager: Any) -> Iterator[Any]:
    """``register_plugin(obj, name=None)``: register a plugin object for this test only."""
    registered: list[Any] = []

    def register(obj: Any, name: str | None = None) -> Any:
        aiinfra_plugin_manager.register(obj, name=name)
        registered.append(obj)
        return obj

    yield register
    for obj in reversed(registered):
        aiinfra_plugin_manager.unregister(obj)


class S3Server:
    """A running moto S3 server (see the ``s3_server`` fixture)."""

    #: fixed test credentials: moto accepts any; real ones never appear in tests
    ACCESS_KEY, SECRET_KEY = "testing-key-id", "testing-secret-key"

    def __init__(self, port: int) -> None:
        self.port = port
        self.endpoint_url = f"http://127.0.0.1:{port}"

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach this server (every aiinfra process and library honours it)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": self.SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self, config: Any = None) -> Any:
        """A boto3 S3 client of this server (``config``: a ``botocore.config.Config``, e.g.
        ``Config(signature_version="s3v4")`` for presigned URLs)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.ACCESS_KEY,
            aws_secret_access_key=self.SECRET_KEY,
            region_name="us-east-1",
            config=config,
        )

    def bucket(self, name: str) -> str:
        """Create the bucket ``name`` (a no-op when it exists); returns ``s3://name``."""
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)
        return f"s3://{name}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3 API on 127.0.0.1 for the whole session (buckets: one per test, by name)."""
    import socket

    try:
        from moto.server import ThreadedMotoServer
    except ImportError:  # pragma: no cover - an author without the test extra
        pytest.skip("s3_server needs moto[server]: pip install 'moto[server]'")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(port)
    finally:
        server.stop()


@pytest.fixture
def aiinfra_project(tmp_path: Path) -> AiinfraProject:
    """A temporary aiinfra project (template conf/, git + DVC, MLflow sqlite) to run stages in."""
    return make_project(tmp_path / "project")
