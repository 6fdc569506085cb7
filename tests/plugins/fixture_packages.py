"""Sources of the tiny plugin packages the plugin-system tests install through real entry points.

Each package is written to a temp dir and installed with pip into its own ``--target`` directory;
a test puts the directories it needs on ``PYTHONPATH`` of an ``aiinfra`` subprocess.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "{version}"
requires-python = ">=3.11"

[project.entry-points.aiinfra]
{ep} = "{module}.plugin"

[tool.setuptools.packages.find]
include = ["{module}*"]

[tool.setuptools.package-data]
{module} = ["conf/**/*.yaml"]
"""

GOOD_PLUGIN = '''
"""A well-behaved plugin that implements every hook."""
import json
import os

from aiinfra.plugins import hookimpl

AIINFRA_API = ">=1.0,<2"


def _event(kind, **payload):
    path = os.environ.get("FIXTURE_EVENTS")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"hook": kind, **payload}) + "\\n")


@hookimpl
def aiinfra_register_components(register):
    register("source", "fixturesrc", target="aiinfra_fixture_good.source:FixtureSource",
             schema="aiinfra_fixture_good.schema:FixtureSourceConfig",
             description="deterministic rows for the plugin tests")


@hookimpl
def aiinfra_config_searchpath():
    return "pkg://aiinfra_fixture_good.conf"


@hookimpl
def aiinfra_register_commands(register):
    register("fixture-hello", target="aiinfra_fixture_good.commands:hello", help="say hello")


@hookimpl
def aiinfra_stage_finished(stage, outputs):
    _event("aiinfra_stage_finished", stage=stage, keys=sorted(outputs))


@hookimpl
def aiinfra_on_drift(report):
    _event("aiinfra_on_drift", drift=report.get("drift_detected"))
'''

GOOD_SOURCE = """
import numpy as np
import pandas as pd


class FixtureSource:
    def __init__(self, cfg):
        self.cfg = cfg

    def read(self):
        rng = np.random.default_rng(int(self.cfg.seed))
        x = rng.normal(size=(int(self.cfg.rows), 4)).astype("float32")
        frame = pd.DataFrame(x, columns=["f0", "f1", "f2", "f3"])
        frame[self.cfg.target] = (x[:, 0] + x[:, 1] > 0).astype("int64")
        return frame
"""

GOOD_SCHEMA = """
from dataclasses import dataclass

from aiinfra.config.schema import SourceConfig


@dataclass
class FixtureSourceConfig(SourceConfig):
    rows: int = 100
    seed: int = 0
"""

GOOD_COMMANDS = """
def hello(args):
    print("hello from fixture:", " ".join(args))
    return 3 if "--fail" in args else 0
"""

GOOD_CONF = "type: fixturesrc\nrows: 300\nseed: 1\ntarget: label\n"

DUP_PLUGIN = """
from aiinfra.plugins import hookimpl

AIINFRA_API = ">=1.0,<2"


@hookimpl
def aiinfra_register_components(register):
    register("source", "dupsrc", target="{module}.plugin:Nothing", description="{module}")


class Nothing:
    pass
"""

BROKEN_PLUGIN = """
import aiinfra_no_such_module_xyz  # noqa: F401  (the plugin's own dependency is missing)
"""

TYPO_PLUGIN = """
from aiinfra.plugins import hookimpl


@hookimpl
def aiinfra_register_component(register):  # misspelled: the spec has aiinfra_register_components
    register("source", "typo", target="x.y:Z")
"""

FUTURE_PLUGIN = """
from aiinfra.plugins import hookimpl

AIINFRA_API = ">=2.0,<3"


@hookimpl
def aiinfra_register_components(register):
    register("source", "future", target="x.y:Z")
"""

ALARM_PLUGIN = """
from aiinfra.plugins import hookimpl

AIINFRA_API = ">=1.0,<2"


@hookimpl
def aiinfra_stage_finished(stage):
    raise RuntimeError("the notifier is down")
"""

CRASH_PLUGIN = """
from aiinfra.plugins import hookimpl


@hookimpl
def aiinfra_register_components(register):
    raise RuntimeError("database of components is offline")
"""


def _package(root: Path, dist: str, files: dict[str, str], version: str = "0.1.0") -> Path:
    module = dist.replace("-", "_")
    pkg = root / dist
    (pkg / module).mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(
        PYPROJECT.format(dist=dist, version=version, ep=dist.removeprefix("aiinfra-"), module=module)
    )
    (pkg / module / "__init__.py").write_text("")
    for rel, text in files.items():
        path = pkg / module / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text).lstrip().replace("{module}", module))
    return pkg


def write_all(root: Path) -> dict[str, Path]:
    """Write every fixture package under ``root``; return distribution name -> package dir."""
    return {
        "aiinfra-fixture-good": _package(
            root,
            "aiinfra-fixture-good",
            {
                "plugin.py": GOOD_PLUGIN,
                "source.py": GOOD_SOURCE,
                "schema.py": GOOD_SCHEMA,
                "commands.py": GOOD_COMMANDS,
                "conf/__init__.py": "",
                "conf/source/fixturesrc.yaml": GOOD_CONF,
            },
            version="1.2.3",
        ),
        "aiinfra-fixture-dup-a": _package(root, "aiinfra-fixture-dup-a", {"plugin.py": DUP_PLUGIN}),
        "aiinfra-fixture-dup-b": _package(root, "aiinfra-fixture-dup-b", {"plugin.py": DUP_PLUGIN}),
        "aiinfra-fixture-broken": _package(root, "aiinfra-fixture-broken", {"plugin.py": BROKEN_PLUGIN}),
        "aiinfra-fixture-typo": _package(root, "aiinfra-fixture-typo", {"plugin.py": TYPO_PLUGIN}),
        "aiinfra-fixture-future": _package(root, "aiinfra-fixture-future", {"plugin.py": FUTURE_PLUGIN}),
        "aiinfra-fixture-crash": _package(root, "aiinfra-fixture-crash", {"plugin.py": CRASH_PLUGIN}),
        "aiinfra-fixture-alarm": _package(root, "aiinfra-fixture-alarm", {"plugin.py": ALARM_PLUGIN}),
    }
