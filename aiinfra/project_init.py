"""``aiinfra init DIR [--csv PATH --target COL] [--force]``: a new project from the packaged template.

Application layer, like :mod:`aiinfra.commands`. Works from a ``pip install`` (no checkout): the
``conf/`` tree and ``dvc.yaml`` come from :mod:`aiinfra.project_template`, which the wheel ships.
Every check (the directory, git, the CSV and its header) runs before the first file is written,
so a refused ``init`` leaves the directory as it was.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from aiinfra.errors import AiinfraError, DataValidationError, did_you_mean

log = logging.getLogger("aiinfra")

#: what the pipeline writes and git must not track: DVC caches data and models, MLflow keeps its
#: own store. data/raw/ stays visible to git so that the `.dvc` file of the copied CSV is tracked.
GITIGNORE = [
    "# written by the pipeline: DVC caches data and models, MLflow keeps runs and the registry",
    "/data/*",
    "!/data/raw/",
    "/models/",
    "/checkpoints/",
    "/logs/",
    "/reports/",
    "/mlflow.db",
    "/mlartifacts/",
    "/mlruns/",
    "/.aiinfra/",
    "/outputs/",
    "/multirun/",
    "/lightning_logs/",
    "/dvc_plots/",
    "__pycache__/",
]


@dataclass(frozen=True)
class CsvSource:
    """The ``--csv`` file as the project will know it."""

    original: Path
    name: str  # the source's config name: conf/source/<name>.yaml
    target: str

    @property
    def relpath(self) -> str:
        return f"data/raw/{self.original.name}"


def init_project(dest: Path, csv_path: Path | None = None, target: str | None = None, force: bool = False) -> Path:
    """Create the project in ``dest`` and return its path (see the module docstring)."""
    dest = dest.expanduser().resolve()
    source = _check(dest, csv_path, target, force)
    name = _project_name(dest)
    dest.mkdir(parents=True, exist_ok=True)
    _write_conf(dest, name, source)
    _write_dvc_yaml(dest, source)
    _write_gitignore(dest)
    _write_readme(dest, name, source)
    if source is not None:
        (dest / "data" / "raw").mkdir(parents=True, exist_ok=True)
        copy = dest / source.relpath
        if not (copy.exists() and copy.samefile(source.original)):  # `init . --force --csv data/raw/x.csv`
            shutil.copyfile(source.original, copy)
    _init_git_dvc(dest, source)
    _compose_params(dest)
    return dest


# --------------------------------------------------------------------------------------------
# checks: nothing is written before they all pass


def _check(dest: Path, csv_path: Path | None, target: str | None, force: bool) -> CsvSource | None:
    if (csv_path is None) != (target is None):
        raise AiinfraError(
            "--csv and --target go together: the CSV file and its target column.",
            hint="aiinfra init DIR --csv data.csv --target label   (or neither: a project on the bundled example data)",
        )
    if dest.exists() and not dest.is_dir():
        raise AiinfraError(f"{dest} exists and is not a directory.", hint="choose another DIR")
    if dest.is_dir() and not force:
        entries = sorted(p.name for p in dest.iterdir())
        if entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise AiinfraError(
                f"{dest} is not empty ({len(entries)} entries: {shown}); nothing was written.",
                hint="choose a new directory, or pass --force to write aiinfra's files into this one "
                "(conf/, dvc.yaml, params.yaml are overwritten; other files are kept)",
            )
    if shutil.which("git") is None:
        raise AiinfraError(
            "git is not installed (or not on PATH): an aiinfra project is a git + DVC repository.",
            hint="install git (e.g. `apt-get install git`, `brew install git`), then run `aiinfra init` again",
        )
    if csv_path is None:
        return None
    return _check_csv(csv_path.expanduser(), str(target))


def _check_csv(path: Path, target: str) -> CsvSource:
    if not path.is_file():
        raise DataValidationError(
            f"CSV file '{path}' not found" + (" (it is a directory)." if path.is_dir() else "."),
            hint="pass the path of an existing CSV file with a header row: --csv path/to/data.csv",
        )
    header = _csv_header(path)
    if target not in header:
        stripped = [c.strip() for c in header]
        raise DataValidationError(
            f"--target '{target}' is not a column of '{path}'."
            + did_you_mean(target, stripped)
            + f" Its columns: {', '.join(stripped)}.",
            hint="pass one of those columns as --target (names are case-sensitive)",
        )
    stem = re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_") or "data"
    return CsvSource(original=path.resolve(), name=stem, target=target)


def _csv_header(path: Path) -> list[str]:
    """The column names of the header row (stdlib only: no pandas for one line)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
    except UnicodeDecodeError:
        raise DataValidationError(
            f"'{path}' is not a UTF-8 text file.", hint="export the table as a UTF-8 CSV with a header row"
        ) from None
    if not [c for c in header if c.strip()]:
        raise DataValidationError(f"CSV '{path}' has no header row.", hint="the first line must name the columns")
    # the CSV source strips spaces around names (aiinfra/data/sources.py): so does the target check
    return [c.strip() for c in header]


def _project_name(dest: Path) -> str:
    """The project's name (MLflow experiment and registered model) from the directory's name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", dest.name).strip("-.") or "aiinfra-project"


# --------------------------------------------------------------------------------------------
# files


def _write_conf(dest: Path, name: str, source: CsvSource | None) -> None:
    from aiinfra.project_template import PROJECT_CONF_DIR

    conf = dest / "conf"
    # the repository's full conf/ (bundled sources, presets, the real trainer), not the tests' minimal one
    skip = shutil.ignore_patterns("__pycache__", "__init__.py")
    shutil.copytree(PROJECT_CONF_DIR, conf, dirs_exist_ok=True, ignore=skip)
    config = conf / "config.yaml"
    text = _replace_line(config.read_text(), r"^project:.*$", f"project: {name}", config)
    if source is not None:
        (conf / "source" / f"{source.name}.yaml").write_text(
            f"# {source.original.name}, copied by `aiinfra init` from {source.original}\n"
            f"# Column types are inferred at `aiinfra prepare` (it prints them); override them in\n"
            f"# conf/config.yaml's `features:` section.\n"
            f"type: csv\n"
            f"path: {_yaml_scalar(source.relpath)}\n"
            f"target: {_yaml_scalar(source.target)}\n"
        )
        text = _replace_line(text, r"^(\s*-\s*source:\s*)\S+.*$", rf"\g<1>{source.name}", config)
        # the demo's floor (test_accuracy >= 0.9 on breast cancer) means nothing for the user's
        # table: the first model is registered, later ones must beat the champion
        text = _replace_line(
            text, r"^(\s*)min: 0\.9\b.*$", "\\g<1>min: null  # an absolute threshold for your data (with mode)", config
        )
        if _target_task(source) == "regression":
            # test_accuracy does not exist for a continuous target: without this, the user's
            # first `aiinfra repro` would stop at register
            text = _replace_line(
                text, r"^(\s*)metric: test_accuracy\b.*$", "\\g<1>metric: test_rmse  # a regression target", config
            )
            text = _replace_line(text, r"^(\s*)mode: max\b.*$", "\\g<1>mode: min  # lower RMSE is better", config)
    config.write_text(text)


def _target_task(source: CsvSource) -> str:
    """The task `prepare` will infer from the CSV's target (the same rule, default features config)."""
    import pandas as pd

    from aiinfra.data.features import infer_task
    from aiinfra.data.schema import FeaturesConfig

    frame = pd.read_csv(source.original, skipinitialspace=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    return str(infer_task(frame[source.target], FeaturesConfig()).task)


def _replace_line(text: str, pattern: str, replacement: str, path: Path) -> str:
    new, count = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
    if count != 1:  # the packaged template changed shape: a bug in aiinfra, not in the user's input
        raise RuntimeError(f"aiinfra's template {path.name} has no line matching {pattern!r}")
    return new


def _yaml_scalar(value: str) -> str:
    """``value`` as a YAML string (quoted when YAML would read it as something else)."""
    import json

    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_./-]*", value) and value.lower() not in {
        "true", "false", "yes", "no", "on", "off", "null", "y", "n",
    }  # fmt: skip
    return value if plain else json.dumps(value)


def _write_dvc_yaml(dest: Path, source: CsvSource | None) -> None:
    from aiinfra.project_template import DVC_YAML

    text = DVC_YAML.read_text()
    if source is not None:
        text = _with_prepare_dep(text, source.relpath)
    (dest / "dvc.yaml").write_text(text)


def _with_prepare_dep(text: str, dep: str) -> str:
    """``dvc.yaml`` with ``dep`` among the prepare stage's deps: an edit of the CSV re-runs prepare."""
    import yaml

    match = re.search(r"^  prepare:\n(?:(?!  \S).*\n)*?(    deps:\n)", text, flags=re.MULTILINE)
    if match is not None:
        new = text[: match.end(1)] + f"      - {_yaml_scalar(dep)}\n" + text[match.end(1) :]
        if dep in (yaml.safe_load(new)["stages"]["prepare"].get("deps") or []):
            return new
    log.warning("dvc.yaml: could not add %s to the prepare stage's deps; add it by hand", dep)
    return text


def _write_gitignore(dest: Path) -> None:
    path = dest / ".gitignore"
    existing = path.read_text().splitlines() if path.is_file() else []
    missing = [line for line in GITIGNORE if line not in existing]
    if missing:
        path.write_text("\n".join([*existing, *missing]) + "\n")


README = """\
# {name}

An [aiinfra](https://pypi.org/project/aiinfra/) project: {data}.

## Run it

    aiinfra repro                 # the whole pipeline (dvc repro): prepare, train, evaluate, register, monitor
    aiinfra prepare               # one stage at a time: prepare | train | evaluate | register | monitor
    aiinfra train model.hidden=128   # any config value on the command line
    aiinfra config                # the composed config, every default filled in
    aiinfra serve                 # serve the registered model over HTTP (alias `champion`)

## Where results appear

| what | where |
|---|---|
| the config | `conf/config.yaml`, `conf/source/`, `conf/model/`, ... (`params.yaml` is composed from them) |
| prepared splits, column types, fitted preprocessing | `data/prepared/` (`contract.json`, `preprocess.json`) |
| the trained model | `models/model/` |
| test metrics and plot data | `metrics.json`, `plots/` (`dvc metrics show`, `dvc plots show`) |
| drift report | `reports/drift/` |
| runs, the model registry (model `{name}`, alias `champion`) | `mlflow ui --backend-store-uri sqlite:///mlflow.db` |

Commit the project with `git add -A && git commit -m "aiinfra project"`: DVC tracks the data and
models, git the config and the pipeline.
"""


def _write_readme(dest: Path, name: str, source: CsvSource | None) -> None:
    path = dest / "README.md"
    if path.exists():  # the user's own README (an init --force into an existing directory)
        log.info("kept the existing %s", path)
        return
    data = (
        f"`{source.relpath}` (copied from `{source.original}`), target column `{source.target}`, "
        f"source `conf/source/{source.name}.yaml`"
        if source is not None
        else "the bundled example data (`conf/source/`); point it at your own CSV with `aiinfra init --csv`"
    )
    path.write_text(README.format(name=name, data=data))


# --------------------------------------------------------------------------------------------
# git, DVC, params.yaml


def _run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DO_NOT_TRACK": "1"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        shown = " ".join(cmd[2:] if cmd[:2] == [sys.executable, "-m"] else cmd)
        raise AiinfraError(
            f"`{shown}` failed in {cwd} (exit {proc.returncode}):\n{(proc.stdout + proc.stderr).strip()}",
            hint="fix the cause above, then run `aiinfra init --force` again",
        )


def _init_git_dvc(dest: Path, source: CsvSource | None) -> None:
    dvc = [sys.executable, "-m", "dvc"]
    if not (dest / ".git").exists():
        _run(["git", "init", "-q"], dest)
    # `dvc exp run -S model.hidden=64` composes conf/ with Hydra, as the repository does; autostage:
    # DVC `git add`s the files it writes (dvc.lock, .gitignore entries)
    if not (dest / ".dvc").exists():
        _run([*dvc, "init", "-q"], dest)
        with (dest / ".dvc" / "config").open("a") as f:  # a fresh, empty config: two `dvc config` runs less (~3 s)
            f.write("[core]\n    autostage = true\n[hydra]\n    enabled = true\n")
    else:
        _run([*dvc, "config", "hydra.enabled", "true"], dest)
        _run([*dvc, "config", "core.autostage", "true"], dest)
    if source is not None:  # the raw data versioned by DVC: data/raw/<file>.dvc goes into git
        _run([*dvc, "add", "-q", source.relpath], dest)


def _compose_params(dest: Path) -> None:
    """``params.yaml`` composed from ``conf/`` (what ``aiinfra compose`` writes), and the
    feedback inbox that the prepare stage depends on.

    A root section the template's ``config.yaml`` leaves out (``split``, ``paths``, ...) is written
    into it first, with its schema defaults: the stages of ``dvc.yaml`` declare them as params, and
    DVC refuses a stage whose params are missing from ``params.yaml``. It also shows the user every
    setting there is."""
    from aiinfra.config.compose import compose, write_params
    from aiinfra.config.validate import validate
    from aiinfra.plugins.manager import get_plugins

    conf = dest / "conf"
    registry = get_plugins().registry
    raw = compose([], conf)
    typed = validate(raw, registry)
    missing = _missing_sections(raw, typed)
    if missing:
        config = conf / "config.yaml"
        config.write_text(config.read_text().rstrip("\n") + "\n\n" + missing)
        raw = compose([], conf)
        typed = validate(raw, registry)
    write_params(raw, dest / "params.yaml")
    (dest / str(typed.paths.feedback)).mkdir(parents=True, exist_ok=True)


def _missing_sections(raw, typed) -> str:
    """YAML of the typed config's root sections (dataclasses, not component groups) absent from ``raw``."""
    import dataclasses

    from omegaconf import OmegaConf

    from aiinfra.config.schema import COMPONENT_GROUPS
    from aiinfra.config.typed import to_dict

    sections = {
        f.name: to_dict(getattr(typed, f.name))
        for f in dataclasses.fields(typed)
        if f.name not in COMPONENT_GROUPS and f.name not in raw and dataclasses.is_dataclass(getattr(typed, f.name))
    }
    if not sections:
        return ""
    header = "# every other setting, with its default (written by `aiinfra init`)\n"
    return header + OmegaConf.to_yaml(OmegaConf.create(sections))


def main(dest: str, csv_path: str | None, target: str | None, force: bool) -> int:
    """The ``init`` command: create the project and say what to run next."""
    root = init_project(Path(dest), Path(csv_path) if csv_path else None, target, force)
    shown = os.path.relpath(root) if not os.path.relpath(root).startswith("..") else str(root)
    print(f"created the aiinfra project {root}\n  next: cd {shown} && aiinfra repro   (README.md lists the commands)")
    return 0
