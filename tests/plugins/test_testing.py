"""aiinfra.testing, the pytest plugin for plugin authors, and its project template."""

from __future__ import annotations

import subprocess
import sys

from omegaconf import OmegaConf

from aiinfra.plugins.manager import get_plugins


def test_pytest_plugin_is_import_light():
    code = ("import sys, aiinfra.testing; "
            "print([m for m in ('torch', 'lightning', 'mlflow', 'evidently', 'hydra', 'pandas', 'omegaconf') "
            "if m in sys.modules])")
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


def test_template_component_files_list_every_schema_key():
    # Hydra accepts overrides only of keys present in the composed files: the template must list
    # every key of each component's schema, or `aiinfra_project.run(..., "server.x=1")` fails.
    from aiinfra.project_template import CONF_DIR

    registry = get_plugins().registry
    for path in sorted(CONF_DIR.glob("*/*.yaml")):
        node = OmegaConf.load(path)
        schema = registry.get(path.parent.name, str(node.type)).load_schema()
        missing = set(OmegaConf.structured(schema).keys()) - set(node.keys())
        assert not missing, f"{path.relative_to(CONF_DIR)} lacks {sorted(missing)}: run `python -m aiinfra.project_template`"
