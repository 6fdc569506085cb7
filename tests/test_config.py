"""Config composition and validation: the errors a user meets first, fast and clear."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from omegaconf import OmegaConf

from aiinfra.config.compose import compose
from aiinfra.config.validate import validate
from aiinfra.errors import ConfigError, UnknownComponentError
from aiinfra.plugins.manager import build_plugin_manager
from project_helpers import REPO, cli_env, run_cli

HEAVY = ("torch", "lightning", "mlflow", "evidently")


@pytest.fixture(scope="module")
def registry():
    return build_plugin_manager().registry


def _validated(overrides, registry):
    return validate(compose(overrides, REPO / "conf"), registry)


def test_default_config_composes_and_validates(registry):
    cfg = _validated([], registry)
    assert cfg.source.type == "sklearn" and cfg.model.type == "mlp" and cfg.trainer.type == "lightning"
    assert cfg.server.type == "http" and cfg.monitor.type == "drift"
    # schema defaults fill keys the YAML leaves out, overrides reach nested keys
    assert _validated(["model.hidden=128", "trainer=gpu"], registry).model.hidden == 128


def test_typo_in_key_names_key_and_valid_keys(registry):
    with pytest.raises(ConfigError) as err:
        _validated(["trainer.max_epoch=3"], registry)
    text = str(err.value)
    assert "trainer.max_epoch" in text and "Did you mean 'max_epochs'" in text
    assert "valid keys under 'trainer'" in text and "early_stopping" in text


def test_appended_unknown_key_is_caught_by_the_schema(registry):
    with pytest.raises(ConfigError, match=r"unknown config key 'model.hiden'.*Did you mean 'hidden'"):
        _validated(["+model.hiden=3"], registry)


def test_wrong_type_names_key_and_value(registry):
    with pytest.raises(ConfigError, match=r"trainer.max_epochs.*'abc'"):
        _validated(["trainer.max_epochs=abc"], registry)


def test_unknown_group_option_lists_choices(registry):
    with pytest.raises(UnknownComponentError) as err:
        _validated(["source=breast_cancr"], registry)
    assert "Did you mean 'breast_cancer'" in str(err.value) and "digits" in str(err.value)


def test_unknown_component_type_lists_registered_names(registry):
    with pytest.raises(UnknownComponentError) as err:
        _validated(["source.type=sklean"], registry)
    assert "Did you mean 'sklearn'" in str(err.value) and "synthetic" in str(err.value)


def test_target_outside_allowlist_is_refused(registry):
    cfg = compose([], REPO / "conf")
    OmegaConf.set_struct(cfg, False)
    cfg.model.callback = {"_target_": "os.system", "command": "echo pwned"}
    with pytest.raises(ConfigError, match=r"os.system.*not allowed"):
        validate(cfg, registry)
    cfg.model.callback = {"_target_": "torch.optim.AdamW"}  # allowlisted: accepted (not instantiated)
    with pytest.raises(ConfigError, match="unknown config key 'model.callback'"):
        validate(cfg, registry)  # ... but the MLP schema has no such key, so it is still refused


def test_cli_typo_fails_fast_without_heavy_imports(tmp_path):
    """`aiinfra train trainer.max_epoch=3` fails in well under 2 s, before torch is imported."""
    code = (
        "import sys, time; t = time.perf_counter(); from aiinfra.cli import main; "
        "rc = main(['train', 'trainer.max_epoch=3']); "
        f"print(rc, round(time.perf_counter() - t, 3), [m for m in {HEAVY!r} if m in sys.modules])"
    )
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=cli_env(), capture_output=True,
                          text=True, timeout=60)
    wall = time.perf_counter() - t0
    rc, in_process, heavy = proc.stdout.split(" ", 2)
    assert rc == "2", proc.stderr
    assert "unknown config key 'trainer.max_epoch'" in proc.stderr and "Did you mean" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert heavy.strip() == "[]", f"heavy modules imported: {heavy}"
    assert float(in_process) < 2.0 and wall < 4.0, (in_process, wall)


def test_help_is_fast_and_light():
    code = ("import sys, time; t = time.perf_counter(); from aiinfra.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            f"print('RESULT', round(time.perf_counter() - t, 3), [m for m in {HEAVY!r} if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=cli_env(), capture_output=True, text=True,
                          timeout=60)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][0]
    _, seconds, heavy = line.split(" ", 2)
    assert "prepare" in proc.stdout and "monitor" in proc.stdout
    assert heavy == "[]" and float(seconds) < 1.0


def test_compose_writes_params_and_check_detects_staleness(project):
    run_cli(project, "compose", check=True)
    params = OmegaConf.load(project / "params.yaml")
    assert params.model.hidden == 64 and "hydra" not in params
    assert run_cli(project, "compose", "--check").returncode == 0
    mlp = project / "conf" / "model" / "mlp.yaml"
    mlp.write_text(mlp.read_text().replace("hidden: 64", "hidden: 32"))
    stale = run_cli(project, "compose", "--check")
    assert stale.returncode == 1 and "out of date" in stale.stderr
    shown = run_cli(project, "config", "model.layers=3", check=True)
    assert "hidden: 32" in shown.stdout and "layers: 3" in shown.stdout


def test_params_file_is_validated_like_conf(project):
    run_cli(project, "compose", check=True)
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("max_epochs:", "max_epoch:"))
    proc = run_cli(project, "prepare", "--params", "params.yaml")
    assert proc.returncode == 2 and "unknown config key 'trainer.max_epoch'" in proc.stderr


def test_override_of_a_schema_key_the_yaml_leaves_out(registry, tmp_path):
    """A user's short group file need not spell out every key the component's schema has."""
    import shutil

    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    (conf / "server" / "http.yaml").write_text("type: http\nport: 9000\n")
    cfg = validate(compose(["server.max_batch_size=64"], conf), registry)
    assert cfg.server.max_batch_size == 64 and cfg.server.port == 9000
    with pytest.raises(ConfigError) as err:
        compose(["server.max_batch_sise=64"], conf)
    assert "Did you mean 'max_batch_size'" in str(err.value) and "max_wait_ms" in str(err.value)
    with pytest.raises(ConfigError, match="server.max_batch_size"):
        validate(compose(["server.max_batch_size=lots"], conf), registry)


def test_committed_params_yaml_matches_conf():
    """DVC reads params.yaml; `dvc repro` does not re-compose it from conf/ (only `dvc exp run`
    does), so the committed file must stay in step with conf/ and the schema defaults."""
    proc = run_cli(REPO, "compose", "--check", AIINFRA_LOAD_PLUGINS="")
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\nrun `aiinfra compose` and commit params.yaml"
