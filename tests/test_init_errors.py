"""`aiinfra init`: refusals that lose nothing, and --force into a directory that has files.

Real CLI subprocesses (tests/project_helpers.py `run_cli`); the end-to-end run from an installed
wheel is tests/test_init_wheel.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from project_helpers import run_cli


def _listing(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_non_empty_directory_without_force_is_refused_and_left_as_it_was(tmp_path):
    dest = tmp_path / "proj"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine\n")
    (dest / "conf").mkdir()
    (dest / "conf" / "config.yaml").write_text("project: my-own\n")
    before = _listing(dest)

    proc = run_cli(tmp_path, "init", "proj")

    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "is not empty (2 entries: conf, notes.txt); nothing was written" in proc.stderr
    assert "--force" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert _listing(dest) == before
    assert not (dest / ".git").exists()


def test_a_missing_csv_is_named_and_nothing_is_created(tmp_path):
    proc = run_cli(tmp_path, "init", "proj", "--csv", "nope.csv", "--target", "y")

    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "CSV file 'nope.csv' not found" in proc.stderr
    assert "hint:" in proc.stderr
    assert not (tmp_path / "proj").exists()


def test_an_unknown_target_names_the_csv_columns(tmp_path):
    (tmp_path / "t.csv").write_text("age, label ,city\n1,a,x\n2,b,y\n")

    proc = run_cli(tmp_path, "init", "proj", "--csv", "t.csv", "--target", "labl")

    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr
    assert "--target 'labl' is not a column of 't.csv'" in err
    assert "Did you mean 'label'?" in err
    assert "Its columns: age, label, city." in err
    assert not (tmp_path / "proj").exists()


def test_csv_without_target_and_a_missing_git_are_clear_errors(tmp_path):
    (tmp_path / "t.csv").write_text("a,y\n1,0\n")
    alone = run_cli(tmp_path, "init", "proj", "--csv", "t.csv")
    assert alone.returncode == 2 and "--csv and --target go together" in alone.stderr

    # a PATH with the interpreter's directory only: no git on it
    no_git = run_cli(tmp_path, "init", "proj", PATH=str(Path(sys.executable).parent))
    assert no_git.returncode == 2, no_git.stdout + no_git.stderr
    assert "git is not installed" in no_git.stderr and "install git" in no_git.stderr
    assert not (tmp_path / "proj").exists()


def test_force_writes_the_project_and_keeps_the_users_files(tmp_path):
    dest = tmp_path / "My Data"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine\n")
    (dest / "README.md").write_text("# my readme\n")
    (dest / ".gitignore").write_text("secret.key\n")
    # a target YAML would read as a boolean ("y") must stay the string
    (tmp_path / "Sales 2024.csv").write_text("region,amount,y\nnorth,1.5,a\nsouth,2.5,b\n")

    proc = run_cli(tmp_path, "init", "My Data", "--csv", "Sales 2024.csv", "--target", "y", "--force")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (dest / "notes.txt").read_text() == "mine\n"
    assert (dest / "README.md").read_text() == "# my readme\n"
    ignored = (dest / ".gitignore").read_text().splitlines()
    assert ignored[0] == "secret.key" and "/mlflow.db" in ignored and "/models/" in ignored
    assert (dest / "data" / "raw" / "Sales 2024.csv").read_bytes() == (tmp_path / "Sales 2024.csv").read_bytes()
    assert (dest / "data" / "raw" / "Sales 2024.csv.dvc").is_file()  # versioned by DVC
    assert (dest / ".git").is_dir() and (dest / ".dvc" / "config").is_file()

    source = yaml.safe_load((dest / "conf" / "source" / "sales_2024.yaml").read_text())
    assert source == {"type": "csv", "path": "data/raw/Sales 2024.csv", "target": "y"}
    config = yaml.safe_load((dest / "conf" / "config.yaml").read_text())
    assert {"source": "sales_2024"} in config["defaults"]
    assert config["project"] == "My-Data"
    params = yaml.safe_load((dest / "params.yaml").read_text())
    assert params["source"]["path"] == "data/raw/Sales 2024.csv" and params["source"]["target"] == "y"
    assert params["project"] == "My-Data"
    # an edit of the CSV re-runs prepare
    assert "data/raw/Sales 2024.csv" in yaml.safe_load((dest / "dvc.yaml").read_text())["stages"]["prepare"]["deps"]
    assert (dest / "data" / "feedback").is_dir()

    # the composed config is what `aiinfra config` sees in the new project
    shown = run_cli(dest, "config")
    assert shown.returncode == 0, shown.stderr
    assert "target: y" in shown.stdout or "target: 'y'" in shown.stdout


def test_the_packaged_dvc_yaml_is_the_repositorys(tmp_path):
    # `aiinfra init` writes the packaged copy: it must be the pipeline the repository runs
    from aiinfra.project_template import DVC_YAML, REPO_DVC_YAML

    assert DVC_YAML.read_text() == REPO_DVC_YAML.read_text(), (
        "aiinfra/project_template/dvc.yaml differs from dvc.yaml: run `python -m aiinfra.project_template`"
    )


def test_a_continuous_target_gets_a_regression_gate(tmp_path):
    """The gate's default metric (test_accuracy) does not exist for a regression target: init
    infers the task from the CSV with prepare's rule and gates on test_rmse (lower is better);
    a class target keeps the default gate."""
    rows = "\n".join(f"{i},{'ab'[i % 2]},{i * 1.37 + 0.5:.2f},{'xy'[i % 2]}" for i in range(60))
    (tmp_path / "r.csv").write_text("n,city,price,kind\n" + rows + "\n")

    for target, metric in (("price", "test_rmse"), ("kind", "test_accuracy")):
        proc = run_cli(tmp_path, "init", f"p-{target}", "--csv", "r.csv", "--target", target)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        params = yaml.safe_load((tmp_path / f"p-{target}" / "params.yaml").read_text())
        gate = params["register"]["gate"]
        # a class target: the schema's default gate (test_accuracy, max) applies
        assert (gate.get("metric", "test_accuracy"), gate.get("mode", "max")) == (
            metric,
            "min" if metric == "test_rmse" else "max",
        ), gate


def test_the_packaged_project_conf_is_the_repositorys():
    # `aiinfra init` writes the packaged copy of conf/: the tree the README and docs describe
    from aiinfra.project_template import project_conf_differs

    assert project_conf_differs() == [], (
        "aiinfra/project_template/project_conf/ differs from conf/: run `python -m aiinfra.project_template`"
    )
