"""Create a new plugin package that passes its own tests out of the box.

``scaffold("acme", "plugins")`` writes ``plugins/aiinfra-acme/``: a pyproject with the ``aiinfra``
entry point, a light plugin module, a data source ``acme`` (class, schema dataclass and
``conf/source/acme.yaml``), a README and tests that use :mod:`aiinfra.testing`. Replace the
generated ``read()`` with your own data and keep the tests green.

``python -m aiinfra.plugins.scaffold NAME [DEST]`` does the same from a shell.
"""

from __future__ import annotations

import re
from pathlib import Path
from textwrap import dedent

from aiinfra import API_VERSION
from aiinfra.errors import AiinfraError
from aiinfra.runner import report_errors

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")


def _names(name: str) -> tuple[str, str, str]:
    """(distribution, module, component) names for ``name`` ("acme" or "aiinfra-acme")."""
    raw = name.strip().lower()
    if not _NAME.match(raw):
        raise AiinfraError(
            f"'{name}' is not a valid plugin name.",
            hint="use lower-case letters, digits and single dashes, starting with a letter: e.g. acme-crm",
        )
    component = re.sub(r"^aiinfra[-_]", "", raw).replace("-", "_")
    dist = "aiinfra-" + component.replace("_", "-")
    return dist, dist.replace("-", "_"), component


def _files(dist: str, module: str, component: str) -> dict[str, str]:
    major = API_VERSION.split(".")[0]
    title = component.replace("_", " ")
    cls = "".join(part.title() for part in component.split("_")) + "Source"
    return {
        "pyproject.toml": f'''\
            [build-system]
            requires = ["setuptools>=77"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist}"
            version = "0.1.0"
            description = "aiinfra plugin: the {title} data source"
            readme = "README.md"
            requires-python = ">=3.11"
            dependencies = ["aiinfra>=0.1", "numpy", "pandas"]

            [project.optional-dependencies]
            test = ["pytest>=8"]

            # aiinfra finds the plugin through this entry-point group
            [project.entry-points.aiinfra]
            {component} = "{module}.plugin"

            [tool.setuptools.packages.find]
            include = ["{module}*"]

            # ship the config files (conf/source/{component}.yaml)
            [tool.setuptools.package-data]
            {module} = ["conf/**/*.yaml"]

            [tool.pytest.ini_options]
            testpaths = ["tests"]
            addopts = "-ra -p no:cacheprovider"
            ''',
        "README.md": f"""\
            # {dist}

            An [aiinfra](https://pypi.org/project/aiinfra/) plugin that adds the data source `{component}`.

            ```bash
            pip install .
            aiinfra plugins                          # lists {dist} and its source '{component}'
            aiinfra prepare source={component}       # conf/source/{component}.yaml ships with the plugin
            ```

            Develop: replace `{cls}.read()` in `{module}/source.py` with your own loading code, add its
            options to `{module}/schema.py` and `{module}/conf/source/{component}.yaml`, then run the
            tests (`pip install -e . && pytest`). They use the `aiinfra.testing` fixtures
            (`register_plugin`, `aiinfra_project`). See aiinfra's docs/plugins.md.
            """,
        f"{module}/__init__.py": f'''\
            """{dist}: the {title} data source for aiinfra."""

            __version__ = "0.1.0"
            ''',
        f"{module}/plugin.py": f'''\
            """Entry point of {dist}. Keep it light: import strings only, nothing heavy at import time."""

            from aiinfra.plugins import hookimpl

            # the aiinfra plugin API versions this plugin works with
            AIINFRA_API = ">={major}.0,<{int(major) + 1}"


            @hookimpl
            def aiinfra_register_components(register):
                register("source", "{component}", target="{module}.source:{cls}",
                         schema="{module}.schema:{cls}Config", description="the {title} data source")


            @hookimpl
            def aiinfra_config_searchpath():
                # conf/source/{component}.yaml: `aiinfra prepare source={component}` works after pip install
                return "pkg://{module}.conf"
            ''',
        f"{module}/schema.py": f'''\
            """Config schema of the {component} source: validated before anything heavy is imported."""

            from dataclasses import dataclass

            from aiinfra.config.schema import SourceConfig


            @dataclass
            class {cls}Config(SourceConfig):
                rows: int = 500
                seed: int = 0
            ''',
        f"{module}/source.py": f'''\
            """The {component} source: built with its config section, ``read()`` returns features + target."""

            from __future__ import annotations

            from {module}.schema import {cls}Config


            class {cls}:
                def __init__(self, cfg: {cls}Config):
                    # the validated, typed section: every default filled in, read with attributes
                    self.cfg = cfg

                def read(self):
                    import numpy as np
                    import pandas as pd

                    # Replace with your own loading code. This generates a reproducible toy problem.
                    rng = np.random.default_rng(self.cfg.seed)
                    x = rng.normal(size=(self.cfg.rows, 3))
                    frame = pd.DataFrame(x, columns=["a", "b", "c"])
                    frame[self.cfg.target] = (x[:, 0] - x[:, 1] > 0).astype("int64")
                    return frame
            ''',
        f"{module}/conf/__init__.py": "",
        f"{module}/conf/source/{component}.yaml": f"""\
            # The {title} source ({dist}). List every key: Hydra overrides only keys present here.
            type: {component}
            rows: 500
            seed: 0
            target: target
            columns: null
            allow_nan: []
            """,
        "tests/test_plugin.py": f'''\
            """Tests of {dist}, with the aiinfra.testing fixtures (a pytest plugin aiinfra installs)."""

            import json

            import pytest
            from omegaconf import OmegaConf

            import {module}.plugin as plugin
            from {module}.schema import {cls}Config
            from aiinfra.config.validate import validate
            from aiinfra.errors import ConfigError
            from aiinfra.plugins.manager import get_plugins


            def test_source_registered_and_reads(register_plugin):
                register_plugin(plugin)
                registry = get_plugins().registry
                # what `aiinfra prepare` does: validate the config, build the source with its typed section
                cfg = validate(OmegaConf.create({{"source": {{"type": "{component}", "rows": 50}}}}), registry)
                assert isinstance(cfg.source, {cls}Config) and cfg.source.seed == 0  # defaults filled in
                frame = registry.get("source", "{component}").load()(cfg.source).read()
                assert len(frame) == 50
                assert "target" in frame.columns


            def test_invalid_option_is_refused_by_the_schema(register_plugin):
                register_plugin(plugin)
                with pytest.raises(ConfigError, match="source.rows"):
                    validate(OmegaConf.create({{"source": {{"type": "{component}", "rows": "many"}}}}),
                             get_plugins().registry)


            def test_listed_by_aiinfra_plugins(aiinfra_project):
                out = aiinfra_project.cli("plugins", "--json", check=True).stdout
                rows = {{r["distribution"]: r for r in json.loads(out)["plugins"]}}
                assert rows["{dist}"]["status"] == "loaded"
                assert ["{component}"] == [c["name"] for c in rows["{dist}"]["components"]]


            def test_prepare_with_the_source(aiinfra_project):
                aiinfra_project.run("prepare", "source={component}", "source.rows=200", check=True)
                meta = json.loads((aiinfra_project.root / "data" / "prepared" / "meta.json").read_text())
                assert sum(meta["rows"][s] for s in ("train", "val", "test")) == 200
            ''',
    }


def scaffold(name: str, dest: str | Path = ".") -> Path:
    """Create the plugin package ``<dest>/aiinfra-<name>/`` and return its directory.

    :param name: the component name (``acme`` or ``aiinfra-acme``): the source is ``acme``, the
        distribution ``aiinfra-acme``, the module ``aiinfra_acme``.
    :param dest: the directory to create the package in (created if missing).
    :raises AiinfraError: the name is invalid or the package directory already exists.
    """
    dist, module, component = _names(name)
    root = Path(dest) / dist
    if root.exists():
        raise AiinfraError(f"{root} already exists.", hint="choose another name or destination, or remove it")
    for rel, text in _files(dist, module, component).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text))
    return root


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m aiinfra.plugins.scaffold", description=__doc__.splitlines()[0])
    parser.add_argument("name", help="component name, e.g. acme (creates aiinfra-acme/)")
    parser.add_argument("dest", nargs="?", default=".", help="where to create the package (default: .)")
    args = parser.parse_args(argv)

    def create() -> int:
        root = scaffold(args.name, args.dest)
        print(f"created {root}\nnext: pip install -e {root} && pytest {root}")
        return 0

    return report_errors(create)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
