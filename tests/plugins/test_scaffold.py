"""A scaffolded plugin package installs and passes its own tests out of the box."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from aiinfra.errors import AiinfraError
from aiinfra.plugins.scaffold import main, scaffold
from aiinfra.testing import pip_install_target


@pytest.mark.slow  # pip install, then the package's own tests: a real `aiinfra prepare` in a git + DVC project
def test_scaffolded_plugin_passes_its_own_tests(tmp_path):
    root = scaffold("acme-crm", tmp_path / "src")
    assert root.name == "aiinfra-acme-crm"
    assert (root / "aiinfra_acme_crm" / "conf" / "source" / "acme_crm.yaml").is_file()
    target = pip_install_target([root], tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    env.pop("AIINFRA_LOAD_PLUGINS", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(root / "tests"),
            "-c",
            str(root / "pyproject.toml"),
            "--rootdir",
            str(root),
            "-q",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout


def test_bad_names_and_existing_directories(tmp_path, capsys):
    with pytest.raises(AiinfraError, match="not a valid plugin name"):
        scaffold("Acme CRM", tmp_path)
    scaffold("aiinfra-acme", tmp_path)  # the prefix is not doubled
    assert (tmp_path / "aiinfra-acme" / "aiinfra_acme" / "plugin.py").is_file()
    assert main(["acme", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
