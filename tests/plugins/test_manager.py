"""The plugin manager in-process, through aiinfra.testing's fixtures (the hooks themselves: test_hooks.py)."""

from __future__ import annotations

import types

import pytest

from aiinfra.errors import PluginError, UnknownComponentError
from aiinfra.plugins import hookimpl
from aiinfra.plugins.manager import get_plugins

pytest_plugins = ["pytester"]


class SourcePlugin:
    @hookimpl
    def aiinfra_register_components(self, register):
        register("source", "inproc", target="collections:OrderedDict", description="in-process")


def test_fresh_manager_has_builtins_only(aiinfra_plugin_manager):
    assert get_plugins() is aiinfra_plugin_manager
    names = aiinfra_plugin_manager.registry.names("source")
    assert {"csv", "parquet", "sklearn", "synthetic"} <= set(names)
    assert [i.name for i in aiinfra_plugin_manager.infos] == ["aiinfra.builtin"]


def test_register_plugin_adds_components_attributed_to_it(register_plugin, aiinfra_plugin_manager):
    assert "inproc" not in aiinfra_plugin_manager.registry.names("source")
    register_plugin(SourcePlugin(), name="inproc-plugin")
    spec = get_plugins().registry.get("source", "inproc")
    assert spec.provider == "inproc-plugin (registered)"
    assert spec.load().__name__ == "OrderedDict"


def test_register_plugin_is_undone_after_the_test(pytester):
    """The fixtures' teardown, checked whatever the order tests run in: an inner pytest session
    registers a plugin in one test and looks for it in the next, and restores the manager the
    process had before."""
    pytester.makepyfile(
        test_inner="""
        import pytest
        from aiinfra.errors import UnknownComponentError
        from aiinfra.plugins import hookimpl, manager

        BEFORE = manager._cached
        SEEN = []


        class SourcePlugin:
            @hookimpl
            def aiinfra_register_components(self, register):
                register("source", "inproc", target="collections:OrderedDict")


        def test_registers(register_plugin, aiinfra_plugin_manager):
            register_plugin(SourcePlugin(), name="inproc-plugin")
            assert manager.get_plugins().registry.get("source", "inproc")
            SEEN.append(aiinfra_plugin_manager)


        def test_gone_in_the_next_test(aiinfra_plugin_manager):
            assert aiinfra_plugin_manager is not SEEN[0]
            names = "bundled, csv, parquet, sklearn, synthetic"
            with pytest.raises(UnknownComponentError, match=f"valid source names: {names}"):
                aiinfra_plugin_manager.registry.get("source", "inproc")
            assert [i.name for i in aiinfra_plugin_manager.infos] == ["aiinfra.builtin"]


        def test_process_manager_restored():
            assert manager._cached is BEFORE
            assert "inproc-plugin" not in [i.name for i in SEEN[0].infos]  # unregistered at teardown
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_unknown_component_did_you_mean(aiinfra_plugin_manager):
    with pytest.raises(UnknownComponentError) as exc:
        aiinfra_plugin_manager.registry.get("source", "synthtic")
    assert "Did you mean 'synthetic'?" in str(exc.value)


def test_unknown_kind_and_bad_target_are_errors(register_plugin):
    bad_kind = types.SimpleNamespace(
        aiinfra_register_components=hookimpl(lambda register: register("sauce", "x", target="a.b:C"))
    )
    register_plugin(bad_kind, name="bad-kind")
    with pytest.raises(PluginError, match="unknown kind 'sauce'. Did you mean 'source'?"):
        _ = get_plugins().registry


def test_duplicate_within_process_names_both(register_plugin):
    register_plugin(SourcePlugin(), name="first")

    class Other:
        @hookimpl
        def aiinfra_register_components(self, register):
            register("source", "inproc", target="collections:Counter")

    register_plugin(Other(), name="second")
    with pytest.raises(PluginError) as exc:
        _ = get_plugins().registry
    assert "first (registered)" in str(exc.value) and "second (registered)" in str(exc.value)


def test_misspelled_hook_on_register(register_plugin, aiinfra_plugin_manager):
    class Typo:
        @hookimpl
        def aiinfra_stage_finish(self, stage):
            pass

    with pytest.raises(PluginError, match="Did you mean 'aiinfra_stage_finished'"):
        register_plugin(Typo(), name="typo")
    assert "typo" not in [i.name for i in aiinfra_plugin_manager.infos]  # left as it was


def test_searchpath_entries_deduplicated_in_load_order_and_validated(register_plugin):
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
    # the built-in plugin comes first (its package config dir: server=ray), then a and b in load order
    assert get_plugins().searchpath() == ["pkg://aiinfra.deploy.conf", "pkg://a.conf", "pkg://b.conf"]

    class Bad:
        @hookimpl
        def aiinfra_config_searchpath(self):
            return ["conf"]

    register_plugin(Bad(), name="bad")
    with pytest.raises(PluginError, match="'pkg://mypackage.conf'"):
        get_plugins().searchpath()


def test_duplicate_command_names_both_plugins(register_plugin):
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


def test_hook_implementation_with_unknown_argument_is_rejected(register_plugin):
    class Wrong:
        @hookimpl
        def aiinfra_on_drift(self, report, severity):
            pass

    with pytest.raises(PluginError, match="severity"):
        register_plugin(Wrong(), name="wrong")
