"""The plugin manager in-process, through aiinfra.testing's fixtures: every hook is exercised."""

from __future__ import annotations

import types

import pytest

from aiinfra.errors import PluginError, UnknownComponentError
from aiinfra.plugins import hookimpl
from aiinfra.plugins.manager import get_plugins


class SourcePlugin:
    @hookimpl
    def aiinfra_register_components(self, register):
        register("source", "inproc", target="collections:OrderedDict", description="in-process")


def test_fresh_manager_has_builtins_only(aiinfra_plugin_manager):
    assert get_plugins() is aiinfra_plugin_manager
    names = aiinfra_plugin_manager.registry.names("source")
    assert {"csv", "parquet", "sklearn", "synthetic"} <= set(names)
    assert [i.name for i in aiinfra_plugin_manager.infos] == ["aiinfra.builtin"]


def test_aiinfra_register_components_via_register_plugin(register_plugin, aiinfra_plugin_manager):
    assert "inproc" not in aiinfra_plugin_manager.registry.names("source")
    register_plugin(SourcePlugin(), name="inproc-plugin")
    spec = get_plugins().registry.get("source", "inproc")
    assert spec.provider == "inproc-plugin (registered)"
    assert spec.load().__name__ == "OrderedDict"


def test_register_plugin_is_undone_after_the_test(aiinfra_plugin_manager):
    # runs after the test above: a fresh manager without 'inproc'
    with pytest.raises(UnknownComponentError) as exc:
        aiinfra_plugin_manager.registry.get("source", "inproc")
    assert "valid source names: csv, parquet, sklearn, synthetic" in str(exc.value)


def test_unknown_component_did_you_mean(aiinfra_plugin_manager):
    with pytest.raises(UnknownComponentError) as exc:
        aiinfra_plugin_manager.registry.get("source", "synthtic")
    assert "Did you mean 'synthetic'?" in str(exc.value)


def test_unknown_kind_and_bad_target_are_errors(register_plugin):
    bad_kind = types.SimpleNamespace(aiinfra_register_components=hookimpl(
        lambda register: register("sauce", "x", target="a.b:C")))
    register_plugin(bad_kind, name="bad-kind")
    with pytest.raises(PluginError, match="unknown kind 'sauce'. Did you mean 'source'?"):
        get_plugins().registry


def test_duplicate_within_process_names_both(register_plugin):
    register_plugin(SourcePlugin(), name="first")

    class Other:
        @hookimpl
        def aiinfra_register_components(self, register):
            register("source", "inproc", target="collections:Counter")

    register_plugin(Other(), name="second")
    with pytest.raises(PluginError) as exc:
        get_plugins().registry
    assert "first (registered)" in str(exc.value) and "second (registered)" in str(exc.value)


def test_misspelled_hook_on_register(register_plugin, aiinfra_plugin_manager):
    class Typo:
        @hookimpl
        def aiinfra_stage_finish(self, stage):
            pass

    with pytest.raises(PluginError, match="Did you mean 'aiinfra_stage_finished'"):
        register_plugin(Typo(), name="typo")
    assert "typo" not in [i.name for i in aiinfra_plugin_manager.infos]  # left as it was


def test_aiinfra_config_searchpath_entries_in_load_order_and_validated(register_plugin):
    class A:
        @hookimpl
        def aiinfra_config_searchpath(self):
            return "pkg://a.conf"

    class B:
        @hookimpl
        def aiinfra_config_searchpath(self):
            return ["pkg://b.conf", "pkg://a.conf"]

    register_plugin(A(), name="a")
    register_plugin(B(), name="b")
    assert get_plugins().searchpath() == ["pkg://a.conf", "pkg://b.conf"]

    class Bad:
        @hookimpl
        def aiinfra_config_searchpath(self):
            return ["conf"]

    register_plugin(Bad(), name="bad")
    with pytest.raises(PluginError, match="'pkg://mypackage.conf'"):
        get_plugins().searchpath()


def test_aiinfra_register_commands(register_plugin):
    class Cmd:
        @hookimpl
        def aiinfra_register_commands(self, register):
            register("hello", target="builtins:print", help="print")

    class Cmd2:
        @hookimpl
        def aiinfra_register_commands(self, register):
            register("hello", target="builtins:repr")

    register_plugin(Cmd(), name="cmd")
    assert get_plugins().commands() == {"hello": ("builtins:print", "print", "cmd (registered)")}
    register_plugin(Cmd2(), name="cmd2")
    with pytest.raises(PluginError, match="command 'hello' is registered twice"):
        get_plugins().commands()


def test_aiinfra_stage_finished_and_aiinfra_on_drift_reach_every_plugin(register_plugin):
    seen = []

    class Listener:
        def __init__(self, tag):
            self.tag = tag

        @hookimpl
        def aiinfra_stage_finished(self, stage, outputs):  # takes fewer args than the spec
            seen.append((self.tag, stage, outputs["rows"]))

        @hookimpl
        def aiinfra_on_drift(self, report, config):
            seen.append((self.tag, "drift", report["drift_share"], config["project"]))

    register_plugin(Listener("x"), name="x")
    register_plugin(Listener("y"), name="y")
    hook = get_plugins().hook
    hook.aiinfra_stage_finished(stage="prepare", outputs={"rows": 10}, config={})
    hook.aiinfra_on_drift(report={"drift_share": 0.5}, config={"project": "p"})
    assert sorted(seen) == [("x", "drift", 0.5, "p"), ("x", "prepare", 10), ("y", "drift", 0.5, "p"), ("y", "prepare", 10)]


def test_hook_implementation_with_unknown_argument_is_rejected(register_plugin):
    class Wrong:
        @hookimpl
        def aiinfra_on_drift(self, report, severity):
            pass

    with pytest.raises(PluginError, match="severity"):
        register_plugin(Wrong(), name="wrong")
