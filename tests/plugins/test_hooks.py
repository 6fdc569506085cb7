"""Every hook of ``aiinfra.plugins.spec``, exercised through a real plugin and its real caller.

``test_hook_<name>`` exists for every hook (``test_hook_api.py`` checks it, as datasette does).
The second half tests the one rule for calling hooks (``aiinfra.plugins.hooks``): load order,
a failing notification implementation isolated and reported, a failing registration
implementation stopping the command with one PluginError that names the plugin.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest
from omegaconf import DictConfig, OmegaConf

from aiinfra import cli, runner
from aiinfra.config.compose import compose
from aiinfra.config.validate import validate
from aiinfra.errors import AiinfraError, ConfigError, PluginError
from aiinfra.plugins import hookimpl
from aiinfra.plugins.hooks import HookOutcome, call_notification, call_registration, implementations
from aiinfra.plugins.manager import get_plugins
from aiinfra.testing import make_project

pytest_plugins = ["plugin_fixtures"]

REPO = Path(__file__).resolve().parents[2]
GOOD = "aiinfra-fixture-good"

#: a plugin's own modules: a source with a schema (what a plugin package ships)
PLUGIN_MODULE = """
from dataclasses import dataclass

import numpy as np
import pandas as pd

from aiinfra.config.schema import SourceConfig


@dataclass
class CoinsConfig(SourceConfig):
    rows: int = 60
    seed: int = 0

    def check(self):
        if self.rows < 10:
            from aiinfra.config.checks import fail

            fail("rows", f"must be >= 10, got {self.rows}")


class Coins:
    def __init__(self, cfg):
        assert isinstance(cfg, CoinsConfig), type(cfg)  # the typed section, not a DictConfig
        self.cfg = cfg

    def read(self):
        rng = np.random.default_rng(self.cfg.seed)
        x = rng.normal(size=(self.cfg.rows, 3)).astype("float32")
        frame = pd.DataFrame(x, columns=["a", "b", "c"])
        frame[self.cfg.target] = (x[:, 0] > 0).astype("int64")
        return frame
"""


@pytest.fixture
def coins(tmp_path, monkeypatch):
    """The module ``aiinfra_coins_fixture`` importable for this test; returns its conf dir."""
    (tmp_path / "aiinfra_coins_fixture.py").write_text(dedent(PLUGIN_MODULE).lstrip())
    conf = tmp_path / "coins_conf"
    (conf / "source").mkdir(parents=True)
    (conf / "source" / "coins.yaml").write_text("type: coins\nrows: 40\ntarget: label\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield conf
    sys.modules.pop("aiinfra_coins_fixture", None)


class CoinsPlugin:
    def __init__(self, conf: Path | None = None):
        self.conf = conf

    @hookimpl
    def aiinfra_register_components(self, register):
        register(
            "source",
            "coins",
            target="aiinfra_coins_fixture:Coins",
            schema="aiinfra_coins_fixture:CoinsConfig",
            description="coin flips",
        )

    @hookimpl
    def aiinfra_config_searchpath(self):
        return [self.conf.as_uri()] if self.conf else None


class Recorder:
    """Notification hooks that record what they were called with."""

    def __init__(self, seen: list, tag: str, fail: bool = False):
        self.seen, self.tag, self.fail = seen, tag, fail

    @hookimpl
    def aiinfra_stage_finished(self, stage, outputs, config):
        self.seen.append((self.tag, stage, outputs, config))
        if self.fail:
            raise RuntimeError(f"{self.tag} is broken")

    @hookimpl
    def aiinfra_on_drift(self, report):  # takes fewer arguments than the spec offers
        self.seen.append((self.tag, "drift", report))
        if self.fail:
            raise RuntimeError(f"{self.tag} is broken")


# --------------------------------------------------------------------------------------------
# one test per hook


def test_hook_aiinfra_register_components(register_plugin, coins):
    """The registry is the caller; the component's schema validates its group, checks included."""
    register_plugin(CoinsPlugin(coins), name="coins-plugin")
    spec = get_plugins().registry.get("source", "coins")
    assert spec.provider == "coins-plugin (registered)" and spec.description == "coin flips"

    def validated(*overrides):
        return validate(compose(["source=coins", *overrides], REPO / "conf"), get_plugins().registry)

    cfg = validated("source.rows=25")
    assert type(cfg.source).__name__ == "CoinsConfig" and cfg.source.rows == 25 and cfg.source.seed == 0
    assert len(spec.load()(cfg.source).read()) == 25
    with pytest.raises(ConfigError, match=r"^source.rows: must be >= 10, got 5"):
        validated("source.rows=5")
    with pytest.raises(ConfigError, match=r"unknown config key 'source.rowz'.*Did you mean 'rows'"):
        validated("+source.rowz=5")


def test_hook_aiinfra_config_searchpath(register_plugin, coins):
    """compose finds the plugin's group files through the search path; the project's conf/ comes first."""
    register_plugin(CoinsPlugin(coins), name="coins-plugin")
    cfg = validate(compose(["source=coins"], REPO / "conf"), get_plugins().registry)
    assert cfg.source.type == "coins" and cfg.source.rows == 40 and cfg.source.target == "label"
    # the project shadows a plugin's file of the same name
    (coins / "source" / "synthetic.yaml").write_text("type: coins\n")
    assert compose(["source=synthetic"], REPO / "conf").source.type == "synthetic"


def test_hook_aiinfra_register_commands(register_plugin, tmp_path, monkeypatch, capsys):
    """The CLI dispatches a plugin's command with its arguments and returns its exit status."""
    (tmp_path / "aiinfra_cmd_fixture.py").write_text(
        "from aiinfra.errors import AiinfraError\n\n\n"
        "def count(args):\n"
        "    if '--bad' in args:\n"
        "        raise AiinfraError('bad flag', hint='drop --bad')\n"
        "    print('count', len(args))\n"
        "    return 5 if args else None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    class Commands:
        @hookimpl
        def aiinfra_register_commands(self, register):
            register("count", target="aiinfra_cmd_fixture:count", help="count the arguments")

    register_plugin(Commands(), name="count-plugin")
    assert cli.main(["count", "x", "-y"]) == 5
    assert cli.main(["count"]) == 0
    assert capsys.readouterr().out == "count 2\ncount 0\n"
    assert cli.main(["count", "--bad"]) == 2
    assert capsys.readouterr().err == "aiinfra: error: bad flag\n  hint: drop --bad\n"
    assert get_plugins().commands()["count"] == (
        "aiinfra_cmd_fixture:count",
        "count the arguments",
        "count-plugin (registered)",
    )


def test_hook_aiinfra_stage_finished(register_plugin, coins, tmp_path, monkeypatch):
    """``runner.run_stage`` runs a real stage (prepare on the plugin's source), then tells every
    plugin, with the stage's outputs and a read-only copy of the config."""
    register_plugin(CoinsPlugin(coins), name="coins-plugin")
    seen: list = []
    register_plugin(Recorder(seen, "first"), name="first")
    project = make_project(tmp_path / "p", git=False, dvc=False)
    monkeypatch.chdir(project.root)  # load_config moves to the project root; undone after the test
    cfg = runner.load_config(["source=coins"])
    outputs = runner.run_stage("prepare", cfg)

    ((tag, stage, got, config),) = seen
    assert (tag, stage) == ("first", "prepare") and got is outputs
    assert got["dataset_hash"] and (project.root / "data" / "prepared" / "meta.json").is_file()
    assert isinstance(config, DictConfig) and config.source.type == "coins" and config.source.rows == 40
    with pytest.raises(Exception, match="read-only"):
        config.source.rows = 1


def test_hook_aiinfra_on_drift(register_plugin):
    seen: list = []
    register_plugin(Recorder(seen, "a"), name="a")
    register_plugin(Recorder(seen, "b"), name="b")
    report = {"drift_detected": True, "drift_share": 0.5}
    outcomes = call_notification(get_plugins(), "aiinfra_on_drift", report=report, config=OmegaConf.create({}))
    assert seen == [("a", "drift", report), ("b", "drift", report)]
    assert [(o.plugin, o.ok) for o in outcomes] == [("a", True), ("b", True)]


# --------------------------------------------------------------------------------------------
# the one rule for calling hooks


def test_implementations_run_in_plugin_load_order(register_plugin, aiinfra_plugin_manager):
    seen: list = []
    for name in ("zeta", "alpha", "mid"):  # registration order, not name order
        register_plugin(Recorder(seen, name), name=name)
    call_notification(get_plugins(), "aiinfra_stage_finished", stage="s", outputs={}, config=None)
    assert [tag for tag, *_ in seen] == ["zeta", "alpha", "mid"]
    # the built-in plugin registers first
    names = [impl.plugin_name for impl in implementations(aiinfra_plugin_manager, "aiinfra_register_components")]
    assert names[0] == "aiinfra.builtin"


def test_installed_plugins_load_builtin_first_then_by_distribution_name(fixture_targets, bare_project):
    """Entry points: aiinfra's built-ins first, then installed distributions sorted by name."""
    code = (
        "import json; from aiinfra.plugins.manager import get_plugins; "
        "from aiinfra.plugins.hooks import implementations; p = get_plugins(); "
        "print(json.dumps([p.provider_of(i.plugin_name) "
        "for i in implementations(p, 'aiinfra_register_components')]))"
    )
    paths = [str(fixture_targets[d]) for d in (GOOD, "aiinfra-fixture-dup-a")]  # good given first on purpose
    env = bare_project.env({"PYTHONPATH": os.pathsep.join(paths)})
    env.pop("AIINFRA_LOAD_PLUGINS", None)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    providers = json.loads(proc.stdout)
    assert providers[0].startswith("aiinfra ")
    dists = [p.split(" ")[0] for p in providers[1:]]
    assert dists == sorted(dists), providers  # whatever else the environment has installed
    assert dists.index("aiinfra-fixture-dup-a") < dists.index("aiinfra-fixture-good")


def test_failing_notification_is_isolated_reported_and_recorded(register_plugin, caplog):
    seen: list = []
    register_plugin(Recorder(seen, "before"), name="before")
    register_plugin(Recorder(seen, "broken", fail=True), name="broken")
    register_plugin(Recorder(seen, "after"), name="after")
    with caplog.at_level(logging.WARNING, logger="aiinfra.plugins"):
        outcomes = call_notification(
            get_plugins(), "aiinfra_stage_finished", stage="train", outputs={"x": 1}, config=None
        )
    assert [tag for tag, *_ in seen] == ["before", "broken", "after"]  # the one after still ran
    assert outcomes == [
        HookOutcome("aiinfra_stage_finished", "before", "before (registered)", True),
        HookOutcome("aiinfra_stage_finished", "broken", "broken (registered)", False, "RuntimeError: broken is broken"),
        HookOutcome("aiinfra_stage_finished", "after", "after (registered)", True),
    ]
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.getMessage() == (
        "plugin 'broken' from broken (registered) failed in aiinfra_stage_finished: RuntimeError: broken is broken"
    )
    # the record the monitor keeps next to its sinks' outcomes: "hook" holds the plugin's name
    assert outcomes[1].as_dict() == {
        "hook": "broken",
        "provider": "broken (registered)",
        "ok": False,
        "error": "RuntimeError: broken is broken",
    }
    assert outcomes[0].as_dict() == {"hook": "before", "provider": "before (registered)", "ok": True}


def test_failing_notification_does_not_fail_the_stage(register_plugin, coins, tmp_path, monkeypatch, caplog):
    register_plugin(CoinsPlugin(coins), name="coins-plugin")
    seen: list = []
    register_plugin(Recorder(seen, "broken", fail=True), name="broken")
    register_plugin(Recorder(seen, "after"), name="after")
    monkeypatch.chdir(make_project(tmp_path / "p", git=False, dvc=False).root)
    with caplog.at_level(logging.WARNING, logger="aiinfra.plugins"):
        outputs = runner.run_stage("prepare", runner.load_config(["source=coins"]))
    assert outputs["dataset_hash"] and [tag for tag, *_ in seen] == ["broken", "after"]
    assert "plugin 'broken' from broken (registered) failed in aiinfra_stage_finished" in caplog.text


def test_failing_registration_is_one_plugin_error_naming_the_plugin(register_plugin):
    calls: list = []

    class Crash:
        @hookimpl
        def aiinfra_register_components(self, register):
            raise KeyError("catalogue")

    class Later:
        @hookimpl
        def aiinfra_register_components(self, register):
            calls.append("later")

    register_plugin(Crash(), name="crash")
    register_plugin(Later(), name="later")
    with pytest.raises(PluginError) as exc:
        _ = get_plugins().registry
    assert str(exc.value).startswith(
        "plugin 'crash' from crash (registered) failed in aiinfra_register_components: KeyError: 'catalogue'"
    )
    assert "AIINFRA_LOAD_PLUGINS" in exc.value.hint
    assert calls == []  # the command stops there: no half-built registry


def test_user_error_raised_in_a_registration_hook_passes_through(register_plugin):
    class Picky:
        @hookimpl
        def aiinfra_register_commands(self, register):
            raise AiinfraError("set PICKY_TOKEN first", hint="export PICKY_TOKEN=...")

    register_plugin(Picky(), name="picky")
    with pytest.raises(AiinfraError) as exc:
        call_registration(get_plugins(), "aiinfra_register_commands", register=lambda *a, **k: None)
    assert type(exc.value) is AiinfraError and exc.value.message == "set PICKY_TOKEN first"


def test_installed_plugin_failing_in_a_notification_is_named_by_distribution(tmp_path, fixture_targets):
    """Through the real CLI: the good plugin's source feeds prepare, a second installed plugin
    raises in aiinfra_stage_finished; the stage still succeeds, the warning names the
    distribution, and the good plugin's own notification still arrives."""
    targets = [fixture_targets[GOOD], fixture_targets["aiinfra-fixture-alarm"]]  # alarm loads first
    project = make_project(tmp_path / "p", git=False, dvc=False, pythonpath=targets)
    events = tmp_path / "events.jsonl"
    proc = project.run("prepare", "source=fixturesrc", env={"FIXTURE_EVENTS": str(events)}, check=True)
    assert (
        "plugin 'fixture-alarm' from aiinfra-fixture-alarm 0.1.0 failed in aiinfra_stage_finished: "
        "RuntimeError: the notifier is down"
    ) in proc.stderr
    (event,) = [json.loads(line) for line in events.read_text().splitlines()]
    assert event["hook"] == "aiinfra_stage_finished" and event["stage"] == "prepare"
    assert "dataset_hash" in event["keys"]
    meta = json.loads((project.root / "data" / "prepared" / "meta.json").read_text())
    assert meta["source"] == "fixturesrc" and meta["features"] == ["f0", "f1", "f2", "f3"]
    assert sum(meta["rows"][s] for s in ("train", "val", "test")) == 300  # rows: 300 from the plugin's yaml
