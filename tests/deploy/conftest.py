"""Deploy fixtures: a project with a real model, the deploy plugin, and one Ray instance per session."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from serving_helpers import REPO, make_model  # noqa: E402


@pytest.fixture(scope="session")
def deploy_project(tmp_path_factory) -> Path:
    """The repo's conf/ (deploy group included) and a real model directory, in a temp dir."""
    root = tmp_path_factory.mktemp("deploy-project")
    shutil.copytree(REPO / "conf", root / "conf")
    make_model(root / "models" / "model")
    return root


@pytest.fixture
def deploy_plugin(aiinfra_plugin_manager):
    """The built-in components only (deploy targets and server=ray are among them)."""
    return aiinfra_plugin_manager


@pytest.fixture
def render(deploy_project, deploy_plugin, monkeypatch, tmp_path):
    """render(target, *overrides) -> output dir: `aiinfra deploy <target>` in the project."""
    from aiinfra.deploy.cli import render as render_target

    monkeypatch.chdir(deploy_project)
    monkeypatch.delenv("AIINFRA_PROJECT_DIR", raising=False)

    def run(target: str, *overrides: str, out: Path | None = None) -> Path:
        dest = out or tmp_path / f"out-{target}"
        model = f"server.model_uri={deploy_project / 'models' / 'model'}"
        render_target(target, [model, *overrides], str(dest))
        os.chdir(deploy_project)
        return dest

    return run


@pytest.fixture(scope="session")
def ray_serve(ray_local):
    """Serve's proxy on a free port on the session's one Ray instance (``ray_local``).

    Yields (proxy port, GCS address); the session's plugin manager holds the built-ins only.
    """
    import ray
    from ray import serve

    import aiinfra.builtin
    from aiinfra.plugins import manager
    from serving_helpers import free_port

    previous = manager._cached
    plugins = manager.build_plugin_manager(load_entrypoints=False, plugins=[aiinfra.builtin])
    manager.reset_plugins(plugins)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        yield port, ray.get_runtime_context().gcs_address
    finally:
        serve.shutdown()
        manager.reset_plugins(previous)
