"""The built-in commands that are not pipeline stages: ``config``, ``compose`` and ``repro``.

Application layer, like :mod:`aiinfra.runner`; each function returns an exit status.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from aiinfra.runner import load_config

log = logging.getLogger("aiinfra")


def show_config(overrides: list[str]) -> int:
    """``aiinfra config``: the composed, validated config, defaults filled in."""
    from aiinfra.config.typed import to_yaml

    print(to_yaml(load_config(overrides)), end="")
    return 0


def compose_params(overrides: list[str], output: Path, check: bool = False) -> int:
    """``aiinfra compose``: ``conf/`` into ``params.yaml`` for ``dvc repro`` (``--check``: is it fresh?)."""
    from omegaconf import OmegaConf

    from aiinfra.config.compose import compose, find_project_root, load_params, to_yaml, write_params
    from aiinfra.config.validate import validate
    from aiinfra.plugins.manager import get_plugins

    root = find_project_root()
    os.chdir(root)
    if os.environ.get("DVC_EXP_NAME") and not overrides and output.name == "params.yaml":
        # `dvc exp run -S ...` composed params.yaml (with its overrides) just before this stage:
        # keep DVC's file, only validate it.
        raw = load_params(output)
        typed = validate(raw, get_plugins().registry)
        log.info("params.yaml was composed by `dvc exp run`; kept as is")
    else:
        raw = compose(overrides, root / "conf")
        typed = validate(raw, get_plugins().registry)
        if check:
            fresh = output.is_file() and OmegaConf.create(output.read_text()) == OmegaConf.create(to_yaml(raw))
            if not fresh:
                print(f"{output} is out of date with conf/: run `aiinfra compose`", file=sys.stderr)
                return 1
            return 0
        changed = write_params(raw, output)
        log.info("%s %s", "wrote" if changed else "unchanged:", output)
    # the feedback inbox is a dependency of the prepare stage: it must exist, even empty
    Path(str(typed.paths.feedback)).mkdir(parents=True, exist_ok=True)
    return 0


def repro(dvc_args: list[str]) -> int:
    """``aiinfra repro``: ``dvc repro`` from the project root (its compose stage refreshes params.yaml)."""
    import subprocess

    from aiinfra.config.compose import find_project_root

    os.chdir(find_project_root())
    _refuse_remote_dvc_outputs()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.call([sys.executable, "-m", "dvc", "repro", *dvc_args], env=env)


def _refuse_remote_dvc_outputs() -> None:
    """DVC stages track local outputs and dependencies (dvc.yaml: data/prepared, data/feedback):
    with those paths on an object store `dvc repro` would fail on a missing output, or skip
    prepare after a retrain export, so say so before DVC starts."""
    from aiinfra.errors import ConfigError
    from aiinfra.runner import load_config
    from aiinfra.storage.urls import is_remote, redact

    cfg = load_config([])
    remote = {
        key: value
        for key, value in (("paths.prepared", cfg.paths.prepared), ("paths.feedback", cfg.paths.feedback))
        if is_remote(value)
    }
    if remote:
        shown = ", ".join(f"{key}={redact(value)}" for key, value in remote.items())
        raise ConfigError(
            f"`aiinfra repro` runs the DVC pipeline, whose stages track local files, but {shown} is on an "
            "object store.",
            hint="keep the DVC-tracked paths local and push them to an S3 remote (dvc remote add -d store s3://...), "
            "or run the stages yourself (aiinfra prepare, aiinfra train, ...) or as an Airflow DAG",
        )
