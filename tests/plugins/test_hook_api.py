"""The hook API stays documented, tested and versioned."""

from __future__ import annotations

import importlib.util
import inspect
import warnings
from pathlib import Path

import pluggy
import pytest

from aiinfra.plugins import docs, hookimpl, spec
from aiinfra.plugins.manager import Plugins

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve()


def test_every_hook_is_documented():
    assert docs.hook_names(), "no hooks found"
    for name in docs.hook_names():
        doc = inspect.getdoc(getattr(spec, name)) or ""
        assert len(doc.split("\n\n")[0]) > 20, f"{name} has no summary line"
        assert ".. versionadded::" in doc, f"{name} does not say in which API version it was added"
        for param in inspect.signature(getattr(spec, name)).parameters:
            assert f":param {param}:" in doc, f"{name} does not document its argument '{param}'"


def test_every_hook_has_a_test():
    """datasette's rule: for every hook in the spec, tests/plugins/test_hooks.py has a test function
    named ``test_hook_<hook>`` that pytest collects (a module-level function, not skipped)."""
    module = _load_by_path(HERE.with_name("test_hooks.py"))
    tests = {
        name: obj for name, obj in vars(module).items() if name.startswith("test_hook_") and inspect.isfunction(obj)
    }
    missing = [n for n in docs.hook_names() if f"test_hook_{n}" not in tests]
    assert not missing, f"hooks without a test_hook_<name> in tests/plugins/test_hooks.py: {missing}"
    extra = sorted(set(tests) - {f"test_hook_{n}" for n in docs.hook_names()})
    assert not extra, f"test_hook_* functions for no hook of the spec: {extra}"
    skipped = [
        n
        for n, fn in tests.items()
        if any(m.name in ("skip", "skipif", "xfail") for m in getattr(fn, "pytestmark", []))
    ]
    assert not skipped, f"hook tests marked skip/xfail: {skipped}"


def _load_by_path(path: Path):
    spec_ = importlib.util.spec_from_file_location("aiinfra_hook_tests_under_inspection", path)
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    return module


def test_hooks_md_is_generated_and_current():
    path = ROOT / "docs" / "hooks.md"
    assert not docs.is_stale(path), "docs/hooks.md is stale: run `python -m aiinfra.plugins.docs`"
    text = path.read_text()
    for name in docs.hook_names():
        assert f"### `{name}`" in text
    assert docs.main(["--check", "-o", str(path)]) == 0


def test_stale_docs_are_detected(tmp_path):
    path = tmp_path / "hooks.md"
    assert docs.main(["--check", "-o", str(path)]) == 1
    docs.write(path)
    assert docs.main(["--check", "-o", str(path)]) == 0
    path.write_text(path.read_text().replace("aiinfra_on_drift", "aiinfra_on_drfit"))
    assert docs.is_stale(path)


def test_retiring_an_argument_warns_plugins_that_still_take_it():
    """The documented retirement policy through aiinfra's own registration path: a hook spec lists
    the retiring argument in ``warn_on_impl_args``; ``Plugins.register`` (entry-point loading shares
    its ``_register``) lets the warning reach the plugin author and still registers the plugin;
    a plugin that dropped the argument gets no warning."""

    class RetiringSpec:  # aiinfra_stage_finished as it would look while 'config' is retired
        @spec.hookspec(warn_on_impl_args={"config": DeprecationWarning("'config' is retired; read outputs['config']")})
        def aiinfra_stage_finished(self, stage, outputs, config):
            """."""

    pm = pluggy.PluginManager(spec.PROJECT)
    pm.add_hookspecs(RetiringSpec)
    plugins = Plugins(pm=pm, infos=[])

    class Old:
        @hookimpl
        def aiinfra_stage_finished(self, stage, config):
            pass

    class New:
        @hookimpl
        def aiinfra_stage_finished(self, stage, outputs):
            pass

    with pytest.warns(DeprecationWarning, match="'config' is retired"):
        plugins.register(Old(), name="old")
    assert plugins.infos[-1].hooks == ["aiinfra_stage_finished"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plugins.register(New(), name="new")
    assert [i.name for i in plugins.infos] == ["old", "new"]
