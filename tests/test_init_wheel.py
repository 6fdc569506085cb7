"""`pip install aiinfra`, then `aiinfra init proj --csv mixed.csv --target y && cd proj && aiinfra repro`.

The user's path without a checkout: the wheel is built from this tree and installed into a fresh
virtual environment. The heavy dependencies are not downloaded again: a `.pth` file in the fresh
environment points at a directory of links to this venv's packages, every aiinfra distribution
and editable-install hook left out, so the only aiinfra importable there is the wheel's (asserted).
The CSV has what real tables have: strings, a boolean, ISO dates, gaps, an identifier column and a
class target with string labels.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from project_helpers import REPO, project_client

pytestmark = pytest.mark.slow

#: this venv's site-packages entries that belong to aiinfra or its editable installs (they would
#: import the checkout instead of the wheel)
_CHECKOUT_ONLY = ("aiinfra", "__editable__", "__pycache__")


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def _build_wheel(tmp: Path) -> Path:
    """The wheel of this tree, built from a clean copy (a stale build/ never leaks into it)."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for package in ("aiinfra", "hydra_plugins"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = tmp / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels), "."],
        src,
        dict(os.environ),
    )
    (wheel,) = wheels.glob("aiinfra-*.whl")
    return wheel


def _purelib(python: Path, cwd: Path, env: dict[str, str]) -> Path:
    """The site-packages directory of the interpreter ``python``."""
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(_run([str(python), "-c", code], cwd, env).stdout.strip())


def _fresh_venv(tmp: Path, wheel: Path) -> Path:
    """A new venv with the wheel installed and this venv's third-party packages linked in."""
    fresh = tmp / "fresh"
    _run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], tmp, dict(os.environ))
    python = fresh / "bin" / "python"
    site = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, {}).stdout.strip()
    )
    deps = tmp / "deps"
    deps.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        if not entry.name.startswith(_CHECKOUT_ONLY) and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    (site / "_aiinfra_test_deps.pth").write_text(f"{deps}\n")
    # pip itself comes through the links; it installs into the fresh environment (its sys.prefix)
    _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], tmp, {})
    return fresh


def _user_env(fresh: Path) -> dict[str, str]:
    """The environment of a user with the fresh venv activated (nothing of this test session's)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "AIINFRA_", "DVC_", "PYTHON", "VIRTUAL_ENV"))
    }
    ours = str(Path(sys.executable).parent)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != ours]
    env.update(PATH=os.pathsep.join([str(fresh / "bin"), *path]), VIRTUAL_ENV=str(fresh), DO_NOT_TRACK="1")
    return env


def _mixed_csv(path: Path, rows: int = 400) -> None:
    """A table with the types real exports have; `y` follows from the features (learnable)."""
    rng = np.random.default_rng(0)
    amount = rng.normal(0, 1, rows)
    city = rng.choice(["north", "south", "east", "west"], rows)
    member = rng.random(rows) < 0.5
    signup = np.datetime64("2023-01-01") + rng.integers(0, 700, rows).astype("timedelta64[D]")
    score = amount + 2.0 * (city == "north") - 1.5 * member
    label = np.where(score > 0.4, "buy", "skip")
    lines = ["customer_id,amount,city,member,signup,y"]
    for i in range(rows):
        gap_amount, gap_city = i % 11 == 3, i % 13 == 5
        lines.append(
            ",".join(
                [
                    f"C{10000 + i}",
                    "" if gap_amount else f"{amount[i]:.4f}",
                    "" if gap_city else str(city[i]),
                    "true" if member[i] else "false",
                    str(signup[i]),
                    str(label[i]),
                ]
            )
        )
    path.write_text("\n".join(lines) + "\n")


def test_a_wheel_install_inits_a_project_on_a_mixed_csv_and_repro_registers_a_model(tmp_path, mlflow_db_template):
    fresh = _fresh_venv(tmp_path, _build_wheel(tmp_path))
    env = _user_env(fresh)
    python = fresh / "bin" / "python"
    site = str(_purelib(python, tmp_path, env))
    code = "import aiinfra, aiinfra.project_template as t; print(aiinfra.__file__); print(t.DVC_YAML)"
    imported = _run([str(python), "-c", code], tmp_path, env).stdout.split()
    assert imported[0].startswith(site + os.sep), f"imported the checkout's aiinfra, not the wheel's: {imported[0]}"
    assert Path(imported[1]).is_file(), "the wheel lacks the packaged dvc.yaml"

    _mixed_csv(tmp_path / "mixed.csv")
    init = _run([str(fresh / "bin" / "aiinfra"), "init", "proj", "--csv", "mixed.csv", "--target", "y"], tmp_path, env)
    assert "created the aiinfra project" in init.stdout
    proj = tmp_path / "proj"
    for path in ("conf/config.yaml", "conf/source/mixed.yaml", "dvc.yaml", "params.yaml", ".gitignore", "README.md"):
        assert (proj / path).is_file(), path
    assert (proj / "data" / "raw" / "mixed.csv").is_file() and (proj / ".git").is_dir() and (proj / ".dvc").is_dir()

    # a migrated, empty store: ~11 s of MLflow migrations are not what this test is about
    shutil.copy(mlflow_db_template, proj / "mlflow.db")
    repro = subprocess.run(
        [str(fresh / "bin" / "aiinfra"), "repro"], cwd=proj, env=env, capture_output=True, text=True, timeout=900
    )
    out = repro.stdout + repro.stderr
    assert repro.returncode == 0, out[-6000:]
    # every stage ran the wheel's aiinfra (the `aiinfra` on the user's PATH is the fresh venv's)
    assert str(REPO / "aiinfra") not in out

    prepared = proj / "data" / "prepared"
    contract = json.loads((prepared / "contract.json").read_text())
    types = {c["name"]: c["type"] for c in contract["columns"]}
    assert types == {"amount": "numeric", "city": "categorical", "member": "boolean", "signup": "datetime"}, types
    assert "customer_id" in contract["dropped"]
    assert (proj / "models" / "model" / "preprocess.json").is_file()

    metrics = json.loads((proj / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.8, metrics

    client = project_client(proj)
    version = client.get_model_version_by_alias("proj", "champion")
    assert str(version.version) == "1"
    # the champion is the model this repro trained
    assert version.run_id == json.loads((proj / "models" / "train_run.json").read_text())["run_id"]
    registration = json.loads((proj / "models" / "registration.json").read_text())
    assert str(registration.get("version")) == "1", registration
