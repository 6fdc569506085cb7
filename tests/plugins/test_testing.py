"""aiinfra.testing, the pytest plugin for plugin authors, and its project template."""

from __future__ import annotations

import shutil
import subprocess
import sys

from omegaconf import OmegaConf


def test_pytest_plugin_is_import_light():
    """pytest loads aiinfra.testing in every session of an environment with aiinfra installed."""
    heavy = ("torch", "lightning", "mlflow", "evidently", "ray", "hydra", "pandas", "numpy", "omegaconf")
    code = f"import sys, aiinfra.testing; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_aiinfra_project_is_a_git_dvc_project_with_local_mlflow(aiinfra_project):
    root = aiinfra_project.root
    assert (root / "conf" / "config.yaml").is_file()
    assert (root / ".git").is_dir() and (root / ".dvc").is_dir()
    assert aiinfra_project.mlflow_uri == f"sqlite:///{root / 'mlflow.db'}"
    assert aiinfra_project.env()["MLFLOW_TRACKING_URI"] == aiinfra_project.mlflow_uri
    proc = aiinfra_project.cli("config", "model.hidden=8", check=True)
    assert "hidden: 8" in proc.stdout
    bad = aiinfra_project.cli("config", "model.hiden=8")
    assert bad.returncode == 2 and "Did you mean 'hidden'?" in bad.stderr


def test_template_component_files_list_every_schema_key(tmp_path):
    # Hydra accepts overrides only of keys present in the composed files: the template must list
    # every key of each component's schema (nested sections and alert sinks included), or
    # `aiinfra_project.run(..., "server.x=1")` fails. Regenerating a copy must change nothing.
    from aiinfra.project_template import CONF_DIR, regenerate

    copy = tmp_path / "conf"
    shutil.copytree(CONF_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    stale = [str(p.relative_to(copy)) for p in regenerate(copy)]
    assert not stale, f"{stale} lack schema keys or have stale ones: run `python -m aiinfra.project_template`"


def test_template_regeneration_adds_missing_keys_and_drops_stale_ones(tmp_path):
    from aiinfra.project_template import CONF_DIR, regenerate

    copy = tmp_path / "conf"
    shutil.copytree(CONF_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    path = copy / "monitor" / "drift.yaml"
    path.write_text("# my monitor\ntype: drift\nthreshold: 0.2\nalerts:\n- type: log\n  url: http://gone\n")
    assert regenerate(copy) == [path]
    text = path.read_text()
    assert text.startswith("# my monitor\ntype: drift\n")
    node = OmegaConf.load(path)
    assert node.threshold == 0.2 and "report_dir" in node  # kept; filled in
    assert list(node.alerts[0]) == ["type", "always"]  # the log sink's own keys; `url` dropped
    assert regenerate(copy) == []
