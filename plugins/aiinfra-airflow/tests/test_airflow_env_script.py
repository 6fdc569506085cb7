"""scripts/airflow_env.sh's safety without a pip install: it never deletes a directory it did not
make, and a failed build is never taken for an environment. A stand-in interpreter (AIRFLOW_PYTHON)
makes a "venv" whose pip fails with only the lines the script filters out of its log; and
`airflow-trigger` finds the interpreter of an `airflow` from its shebang, or says it cannot."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from aiinfra_airflow.trigger import BUILDING_MARKER, AirflowError, airflow_python, find_airflow
from conftest import ENV_SCRIPT

# `python -m venv DIR`: a bin/python whose `-m pip install` prints only mirror noise and fails,
# and a bin/airflow that would pass `airflow version` (the build must stop before it anyway)
FAKE_PYTHON = """#!/usr/bin/env bash
set -e
[ "$1 $2" = "-m venv" ] || exit 9
mkdir -p "$3/bin"
printf '#!/usr/bin/env bash\\necho "Location http://mirror/simple/x/ is ignored"\\nexit 1\\n' >"$3/bin/python"
printf '#!/usr/bin/env bash\\nexit 0\\n' >"$3/bin/airflow"
chmod +x "$3/bin/python" "$3/bin/airflow"
"""


def env_script(target: Path, python: Path | str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AIINFRA_AIRFLOW_ENV"}
    env["AIRFLOW_PYTHON"] = str(python)
    return subprocess.run(["bash", str(ENV_SCRIPT), str(target)], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    path = tmp_path / "fake-python"
    path.write_text(FAKE_PYTHON)
    path.chmod(0o755)
    return path


def test_a_foreign_directory_is_refused_not_deleted(tmp_path, fake_python):
    theirs = tmp_path / "their-airflow-env"
    (theirs / "bin").mkdir(parents=True)
    (theirs / "bin" / "airflow").write_text("#!/bin/sh\n")
    (theirs / "notes.txt").write_text("keep me")
    proc = env_script(theirs, fake_python)
    assert proc.returncode == 2, proc.stderr
    assert f"{theirs} exists and is not an environment this script built" in proc.stderr
    assert sorted(p.name for p in theirs.rglob("*")) == ["airflow", "bin", "notes.txt"]
    assert (theirs / "notes.txt").read_text() == "keep me"
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert env_script(a_file, fake_python).returncode == 2 and a_file.read_text() == "x"


def test_a_failed_build_prints_why_and_is_not_an_environment(tmp_path, fake_python):
    target = tmp_path / "empty"
    target.mkdir()  # an empty directory is fine to build in
    proc = env_script(target, fake_python)
    # every log line is filtered out ("is ignored"): the script still gets to its message
    assert proc.returncode == 1, proc.stderr
    assert f"airflow_env: pip install failed (full log: {target}.build.log)" in proc.stderr
    assert proc.stdout == ""  # no path printed: callers must not use it
    assert (target / BUILDING_MARKER).is_file() and not list(target.glob(".aiinfra-airflow-3*"))
    with pytest.raises(AirflowError, match="unfinished build of airflow_env.sh"):
        find_airflow(str(target / "bin" / "airflow"), {})
    with pytest.raises(AirflowError, match="unfinished build"):
        find_airflow(None, {"AIINFRA_AIRFLOW_ENV": str(target)})
    # our own unfinished build is ours to delete: a second call starts it again (and fails again)
    (target / "bin" / "stale").write_text("from the first try")
    again = env_script(target, fake_python)
    assert again.returncode == 1 and "pip install failed" in again.stderr
    assert not (target / "bin" / "stale").exists()


def test_airflow_python_from_the_shebang(tmp_path):
    interpreter = tmp_path / "opt" / "py" / "bin" / "python3.12"
    interpreter.parent.mkdir(parents=True)
    interpreter.write_text("#!/bin/sh\n")
    interpreter.chmod(0o755)
    local_bin = tmp_path / "usr-local-bin"  # pipx / a system install: no python beside airflow
    local_bin.mkdir()
    airflow = local_bin / "airflow"
    airflow.write_text(f"#!{interpreter}\nimport airflow\n")
    airflow.chmod(0o755)
    assert airflow_python(airflow) == interpreter
    long_form = local_bin / "airflow-long"  # pip's form when the interpreter's path is too long
    long_form.write_text(f"#!/bin/sh\n'''exec' \"{interpreter}\" \"$0\" \"$@\"\n' '''\n")
    assert airflow_python(long_form) == interpreter
    interpreter.unlink()
    with pytest.raises(AirflowError, match="cannot find the Python that runs it") as err:
        airflow_python(airflow)
    assert str(interpreter) in str(err.value)


def test_trigger_test_mode_without_an_interpreter_is_one_clear_error(project, tmp_path):
    project.cli("export", "airflow", check=True)
    airflow = tmp_path / "bin" / "airflow"
    airflow.parent.mkdir()
    airflow.write_text(f"#!{tmp_path / 'gone' / 'python'}\n")
    airflow.chmod(0o755)
    proc = project.cli("airflow-trigger", "--mode", "test", "--airflow", str(airflow))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{airflow}: cannot find the Python that runs it" in proc.stderr
