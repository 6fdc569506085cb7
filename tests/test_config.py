"""Config composition and validation: the errors a user meets first, early and clear.

Every enumerated option and every range or cross-field rule of the root schema fails in
``validate`` with the key named, before torch is imported. The CLI's own plumbing is here too:
the command table and ``aiinfra.runner.report_errors``, the one place that prints ``aiinfra: error:``.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
import warnings

import pytest
from omegaconf import OmegaConf

from aiinfra import cli, runner
from aiinfra.config.compose import compose
from aiinfra.config.schema import EvalSplit, GateMode, Loader, PrepareEngine, SplitMethod
from aiinfra.config.validate import AiinfraDeprecationWarning, validate
from aiinfra.errors import AiinfraError, ConfigError, UnknownComponentError
from aiinfra.governance.schema import QualityAction, SigningMode
from aiinfra.plugins import hookimpl
from aiinfra.plugins.manager import build_plugin_manager
from aiinfra.serving.schema import ColumnPolicy
from project_helpers import REPO, cli_env, run_cli

HEAVY = ("torch", "lightning", "mlflow", "evidently", "ray")

#: (override, the message's start): an enumerated option outside its enumeration
ENUM_CASES = [
    ("data.loader=fast", "data.loader"),
    ("register.gate.mode=maximum", "register.gate.mode"),
    ("evaluate.split=holdout", "evaluate.split"),
    ("audit.data_quality=strict", "audit.data_quality"),
    ("signing.mode=always", "signing.mode"),
    ("server.log_privacy.default=encrypt", "server.log_privacy.default"),
    ("prepare.engine=spark", "prepare.engine"),
    ("split.method=random", "split.method"),
]
#: (overrides, the message's start): a range or cross-field rule of the root schema broken
RULE_CASES = [
    (["split.val=0"], "split.val: must be a share between 0 and 1"),
    (["split.test=1.5"], "split.test: must be a share between 0 and 1"),
    (["split.val=0.5", "split.test=0.5"], "split.test: val + test must leave rows to train on"),
    (["reference.rows=0"], "reference.rows: must be >= 1"),
    (["data.batch_size=0"], "data.batch_size: must be >= 1"),
    (["data.stream_chunk_rows=0"], "data.stream_chunk_rows: must be >= 1"),
    (["data.num_workers=-1"], "data.num_workers: must be >= 0"),
    (["register.gate.tolerance=-0.1"], "register.gate.tolerance: must be >= 0"),
    (["tracking.retry_s=-1"], "tracking.retry_s: must be >= 0"),
    (["costs.rates.cpu_hour=-1"], "costs.rates.cpu_hour: must be >= 0"),
    (["costs.rates.gpu_hour.default=-2"], "costs.rates.gpu_hour.default: must be >= 0"),
    (["budget.max_cost=0"], "budget.max_cost: must be > 0 or null"),
    (["budget.stages={trian: {max_cpu_hours: 1}}"], "budget.stages.trian: is not a stage"),
    (["budget.stages={train: {max_cost: -1}}"], "budget.stages.train.max_cost: must be > 0 or null"),
    (["audit.max_null_increase=2"], "audit.max_null_increase: must be a share between 0 and 1"),
    (["server.tls.certfile=server.pem"], "server.tls.keyfile: certfile and keyfile go together"),
    (["server.tls.client_ca=ca.pem"], "server.tls.client_ca: needs certfile and keyfile"),
    (["server.log_privacy.retention_days=0"], "server.log_privacy.retention_days: must be >= 1 or null"),
    (["prepare.batch_rows=0"], "prepare.batch_rows: must be >= 1"),
    (["prepare.sample_rows=0"], "prepare.sample_rows: must be >= 1"),
    (["prepare.engine=stream", "split.method=shuffle"], "split.method: prepare.engine=stream splits by hash"),
    (["split.method=shuffle", "split.key=id"], "split.key: is used by split.method=hash only"),
    (["storage.endpoint_url=127.0.0.1:9000"], "storage.endpoint_url: must be an http(s) URL"),
    (["storage.endpoint_url=http://key:secret@127.0.0.1:9000"], "storage.endpoint_url: must not carry a user"),
    (["storage.connect_timeout_s=0"], "storage.connect_timeout_s: must be >= 0.1"),
    (["paths.models=s3://bkt/models"], "paths.models: must be a local directory"),
    (["monitor.report_dir=s3://bkt/r"], "monitor.report_dir: must be a local directory"),
    (["paths.prepared=s3://AKIA:SECRET@bkt/p"], "paths.prepared: must not carry a user or password"),
]


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


# --------------------------------------------------------------------------------------------
# enumerated options and rules of the root schema


@pytest.mark.parametrize(
    ("key", "enum"),
    [
        ("data.loader", Loader),
        ("register.gate.mode", GateMode),
        ("evaluate.split", EvalSplit),
        ("audit.data_quality", QualityAction),
        ("signing.mode", SigningMode),
        ("server.log_privacy.default", ColumnPolicy),
        ("prepare.engine", PrepareEngine),
        ("split.method", SplitMethod),
    ],
)
def test_every_enumerated_value_is_accepted_as_its_member(registry, key, enum):
    for member in enum:
        cfg = _validated([f"{key}={member.value}"], registry)
        value = functools.reduce(getattr, key.split("."), cfg)
        assert value is member and value == member.value


@pytest.mark.parametrize(("override", "key"), ENUM_CASES)
def test_value_outside_an_enumeration_names_the_key_and_the_choices(registry, override, key):
    with pytest.raises(ConfigError) as err:
        _validated([override], registry)
    text = str(err.value)
    assert key in text and override.split("=")[1] in text
    enum = {
        "data.loader": Loader,
        "register.gate.mode": GateMode,
        "evaluate.split": EvalSplit,
        "audit.data_quality": QualityAction,
        "signing.mode": SigningMode,
        "server.log_privacy.default": ColumnPolicy,
        "prepare.engine": PrepareEngine,
        "split.method": SplitMethod,
    }[key]
    assert all(member.value in text for member in enum), text


def test_budget_stage_names_are_the_runners_stages():
    from aiinfra.governance.schema import STAGE_NAMES
    from aiinfra.runner import STAGES

    assert tuple(STAGES) == STAGE_NAMES


def test_stage_budget_falls_back_to_the_section_limits(registry):
    cfg = _validated(["budget.max_cost=5", "budget.stages={train: {max_cpu_hours: 2}}"], registry)
    assert (cfg.budget.for_stage("train").max_cost, cfg.budget.for_stage("train").max_cpu_hours) == (5, 2)
    assert (cfg.budget.for_stage("prepare").max_cost, cfg.budget.for_stage("prepare").max_cpu_hours) == (5, None)


@pytest.mark.parametrize(("overrides", "message"), RULE_CASES)
def test_broken_rule_fails_validation_naming_the_key(registry, overrides, message):
    with pytest.raises(ConfigError) as err:
        _validated(overrides, registry)
    assert str(err.value).startswith(message), str(err.value)


def test_rules_and_enumerations_fail_before_heavy_imports():
    """Every case above, through ``runner.load_config`` in one fresh interpreter: each fails with its
    message and none of torch, lightning, mlflow, evidently, ray is imported."""
    cases = [[o] for o, _ in ENUM_CASES] + [o for o, _ in RULE_CASES]
    code = (
        "import json, sys\n"
        "from aiinfra.errors import ConfigError\n"
        "from aiinfra.runner import load_config\n"
        "out = []\n"
        f"for overrides in {cases!r}:\n"
        "    try:\n"
        "        load_config(overrides)\n"
        "        out.append(None)\n"
        "    except ConfigError as exc:\n"
        "        out.append(str(exc))\n"
        f"print(json.dumps({{'errors': out, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    expected = [key for _, key in ENUM_CASES] + [message for _, message in RULE_CASES]
    for error, start in zip(result["errors"], expected, strict=True):
        assert error is not None and start in error, (start, error)
    assert result["heavy"] == [], f"validation imported {result['heavy']}"


def test_allowed_targets_is_deprecated_and_still_loads(registry):
    with pytest.warns(AiinfraDeprecationWarning, match="security.allowed_targets is deprecated"):
        cfg = _validated(["security.allowed_targets=[torch.optim.AdamW]"], registry)
    assert cfg.model.type == "mlp"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _validated([], registry)  # the default (empty) list: no warning


def test_target_key_in_a_component_group_is_an_unknown_key(registry, tmp_path):
    """Nothing instantiates ``_target_`` from config: in a component group it is just a key the
    component's schema does not have."""
    with pytest.raises(ConfigError, match=r"unknown config key 'model._target_'"):
        _validated(["+model._target_=os.system"], registry)
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    (conf / "source" / "evil.yaml").write_text("type: sklearn\n_target_: os.system\ncommand: echo pwned\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'source._target_'"):
        validate(compose(["source=evil"], conf), registry)


# --------------------------------------------------------------------------------------------
# the command line: heavy imports, the command table, errors


def _fresh_interpreter(code: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120
    )
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, proc.stdout + proc.stderr
    return {**json.loads(line[-1].removeprefix("RESULT ")), "stdout": proc.stdout, "stderr": proc.stderr}


def test_cli_typo_fails_before_heavy_imports():
    """`aiinfra train trainer.max_epoch=3`: the typo is reported before torch is imported."""
    result = _fresh_interpreter(
        "import json, sys; from aiinfra.cli import main; rc = main(['train', 'trainer.max_epoch=3']); "
        f"print('RESULT', json.dumps({{'rc': rc, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))"
    )
    assert result["rc"] == 2, result["stderr"]
    assert "unknown config key 'trainer.max_epoch'" in result["stderr"] and "Did you mean" in result["stderr"]
    assert "Traceback" not in result["stderr"]
    assert result["heavy"] == [], f"heavy modules imported: {result['heavy']}"


@pytest.mark.parametrize("argv", [["--help"], ["config"], ["config", "model.hidden=8"]])
def test_help_and_config_import_nothing_heavy(argv):
    result = _fresh_interpreter(
        "import json, sys; from aiinfra.cli import main\n"
        f"try:\n    rc = main({argv!r})\nexcept SystemExit as exc:\n    rc = exc.code\n"
        f"print('RESULT', json.dumps({{'rc': rc, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))"
    )
    assert result["rc"] == 0, result["stderr"]
    assert result["heavy"] == [], f"`aiinfra {' '.join(argv)}` imported {result['heavy']}"


def test_every_command_in_the_table_is_in_help(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert set(cli.COMMANDS) >= set(runner.STAGES)
    for name in cli.COMMANDS:
        assert re.search(rf"^ {{4}}{re.escape(name)}(\s|$)", out, re.MULTILINE), f"command '{name}' missing from --help"


def test_plugin_command_is_dispatched_with_its_arguments(
    aiinfra_plugin_manager, register_plugin, tmp_path, monkeypatch, capsys
):
    # a module name no other test uses (sys.modules is shared by the whole session)
    (tmp_path / "aiinfra_greet_command_fixture.py").write_text(
        "def greet(args):\n    print('greet', *args)\n    return 4 if '--fail' in args else None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "aiinfra_greet_command_fixture", raising=False)

    class Commands:
        @hookimpl
        def aiinfra_register_commands(self, register):
            register("greet", target="aiinfra_greet_command_fixture:greet", help="say hello")

    register_plugin(Commands(), name="cmd-plugin")
    assert cli.main(["greet", "a", "b"]) == 0
    assert capsys.readouterr().out == "greet a b\n"
    assert cli.main(["greet", "--fail"]) == 4  # a leading option reaches the command too
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "say hello [cmd-plugin (registered)]" in capsys.readouterr().out


def test_report_errors_prints_one_error_line_with_its_hint_and_exit_code(capsys):
    def broken() -> int:
        raise ConfigError("server.port: must be <= 65535, got 70000", hint="pick a free port")

    assert runner.report_errors(broken) == 2
    err = capsys.readouterr().err
    assert err == "aiinfra: error: server.port: must be <= 65535, got 70000\n  hint: pick a free port\n"

    class Custom(AiinfraError):
        exit_code = 7

    assert runner.report_errors(lambda: (_ for _ in ()).throw(Custom("no"))) == 7
    assert capsys.readouterr().err == "aiinfra: error: no\n"


def test_report_errors_passes_status_through_and_keeps_bugs_tracebacks(capsys):
    assert runner.report_errors(lambda: 3) == 3
    assert runner.report_errors(lambda: None) == 0

    def interrupted() -> int:
        raise KeyboardInterrupt

    assert runner.report_errors(interrupted) == 130
    assert capsys.readouterr().err == "aiinfra: interrupted\n"

    def bug() -> int:
        raise ZeroDivisionError("a bug, not a user error")

    with pytest.raises(ZeroDivisionError):
        runner.report_errors(bug)
    assert "aiinfra: error" not in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# params.yaml and group files


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


def test_an_endpoint_with_a_password_is_refused_without_echoing_it(registry):
    with pytest.raises(ConfigError) as err:
        _validated(["storage.endpoint_url=http://key:s3cr3t@127.0.0.1:9000"], registry)
    assert "s3cr3t" not in str(err.value) and "AWS_SECRET_ACCESS_KEY" in str(err.value)


def test_repro_refuses_dvc_tracked_paths_on_an_object_store(project):
    """dvc.yaml's stages track data/prepared and data/feedback locally: with either on a store,
    `aiinfra repro` says so (and how to work) before DVC fails on a missing output."""
    config = project / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("  prepared: data/prepared", "  prepared: s3://team/prepared"))
    proc = run_cli(project, "repro")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "paths.prepared=s3://team/prepared is on an object store" in proc.stderr and "dvc remote add" in proc.stderr
