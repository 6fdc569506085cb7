"""Fixture plugin packages, installed once per session with pip into one ``--target`` dir each.

Not a conftest.py on purpose: every conftest module is named ``conftest``, and other test
directories import helpers with ``from conftest import ...``; a further conftest would compete
for that name. Test modules import these fixtures explicitly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aiinfra.testing import AiinfraProject, make_project, pip_install_target


def _load_fixture_packages():
    # loaded by path: no sys.path entry, so no clash with other test directories' module names
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "aiinfra_plugin_fixture_packages", Path(__file__).with_name("fixture_packages.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixture_packages = _load_fixture_packages()


@pytest.fixture(scope="session")
def fixture_targets(tmp_path_factory) -> dict[str, Path]:
    """distribution name -> a directory it is pip-installed in (put it on PYTHONPATH to use it)."""
    root = tmp_path_factory.mktemp("fixture-plugins")
    packages = fixture_packages.write_all(root / "src")
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = {dist: pool.submit(pip_install_target, [pkg], root / "site" / dist) for dist, pkg in packages.items()}
    return {dist: future.result() for dist, future in done.items()}


@pytest.fixture(scope="session")
def bare_project(tmp_path_factory) -> AiinfraProject:
    """A project without git/DVC for CLI runs that only compose and list (read-only use)."""
    return make_project(tmp_path_factory.mktemp("bare") / "project", git=False, dvc=False)


class CLI:
    """Run ``aiinfra`` in a project with a chosen set of fixture plugins installed."""

    def __init__(self, project: AiinfraProject, targets: dict[str, Path]):
        self.project = project
        self.targets = targets

    def __call__(
        self, *args: str, plugins: tuple[str, ...] = (), env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        full_env = self.project.env()
        for name in ("AIINFRA_LOAD_PLUGINS", "AIINFRA_STRICT_PLUGINS"):
            full_env.pop(name, None)  # only what the test sets
        paths = [str(self.targets[p]) for p in plugins]
        full_env["PYTHONPATH"] = os.pathsep.join([*paths, full_env.get("PYTHONPATH", "")]).strip(os.pathsep)
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "aiinfra", *args],
            cwd=self.project.root,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture
def cli(bare_project, fixture_targets) -> CLI:
    return CLI(bare_project, fixture_targets)
