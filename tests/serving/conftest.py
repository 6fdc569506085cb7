"""Serving fixtures: real model directories and real `aiinfra serve` processes on 127.0.0.1."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from serving_helpers import REPO, ServerProcess, make_model


@pytest.fixture(scope="session")
def serving_project(tmp_path_factory) -> Path:
    """A project directory (the repo's conf/) whose logs and data stay in a temp dir."""
    root = tmp_path_factory.mktemp("serving-project")
    shutil.copytree(REPO / "conf", root / "conf")
    return root


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("models") / "model")


@pytest.fixture(scope="module")
def server(serving_project, model_dir):
    """One shared server for the read-mostly protocol tests of a module."""
    srv = ServerProcess(
        serving_project,
        [f"server.model_uri={model_dir}", "server.log_flush_interval_s=0.2", "server.max_rows=100"],
        name="shared",
    ).start()
    yield srv
    assert srv.stop() == 0, srv.text()


@pytest.fixture
def start_server(serving_project):
    """Factory: start a server with overrides; stopped (SIGTERM) at the end of the test."""
    started: list[ServerProcess] = []

    def start(overrides: list[str], env: dict[str, str] | None = None, name: str = "server") -> ServerProcess:
        srv = ServerProcess(serving_project, overrides, env, name).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture(scope="session")
def model_factory():
    return make_model


@pytest.fixture(scope="session")
def predictor(model_dir):
    from aiinfra.models.model_dir import Predictor

    return Predictor.load(model_dir)
