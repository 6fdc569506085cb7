"""The hook API stays documented, tested and versioned."""

from __future__ import annotations

import inspect
import re
import warnings
from pathlib import Path

import pluggy
import pytest

from aiinfra.plugins import docs, spec

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
    sources = "\n".join(p.read_text() for p in HERE.parent.glob("test_*.py") if p != HERE)
    untested = [n for n in docs.hook_names() if not re.search(rf"\b{n}\b", sources)]
    assert not untested, f"hooks without a test in tests/plugins/: {untested}"


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


def test_retiring_an_argument_warns_implementations_that_take_it():
    # The documented policy, with the pluggy this aiinfra runs on: a spec lists a retiring
    # argument in warn_on_impl_args; an implementation still taking it is warned on register.
    hookspec = pluggy.HookspecMarker("retire")
    hookimpl = pluggy.HookimplMarker("retire")

    class Spec:
        @hookspec(warn_on_impl_args={"config": DeprecationWarning("'config' is retired; read outputs['config']")})
        def on_event(self, stage, config):
            """."""

    class Old:
        @hookimpl
        def on_event(self, stage, config):
            pass

    class New:
        @hookimpl
        def on_event(self, stage):
            pass

    pm = pluggy.PluginManager("retire")
    pm.add_hookspecs(Spec)
    with pytest.warns(DeprecationWarning, match="'config' is retired"):
        pm.register(Old())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pm.register(New())
