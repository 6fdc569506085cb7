"""The register gate refuses a worse model end to end: a real MLflow store, two real trainings (the
second worse by construction), then `aiinfra register` as a user runs it. The worse version is
registered and tagged with the reason, the alias stays on the champion and the audit log says
so, for a model worse than the champion and for one below the floor; the command exits 0 (a
refusal is an outcome the pipeline goes on from, not an error)."""

from __future__ import annotations

import json

import pytest

from project_helpers import project_client, run_cli


@pytest.fixture
def in_process(project, monkeypatch, capsys):
    """``aiinfra ARGS`` in this process, in ``project`` (torch and MLflow are imported once)."""
    from aiinfra.cli import main

    for key in ("MLFLOW_TRACKING_URI", "AIINFRA_MULTIRUN", "AIINFRA_PARENT_RUN_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(project)

    def run(*args: str) -> None:
        code = main(list(args))
        out = capsys.readouterr()
        assert code == 0, f"aiinfra {' '.join(args)}: {out.err[-3000:]}"

    return run


def _audit(project) -> list[dict]:
    return [json.loads(line) for line in (project / "logs" / "audit.jsonl").read_text().splitlines()]


def test_a_worse_model_is_registered_but_the_alias_stays(project, in_process):

    in_process("prepare")
    in_process("train", "seed=1")
    in_process("evaluate")
    in_process("register")
    first = json.loads((project / "models" / "registration.json").read_text())
    assert first["version"] == "1" and first["alias_moved"], first
    champion_accuracy = json.loads((project / "metrics.json").read_text())["test_accuracy"]

    # worse by construction: one epoch at a learning rate that leaves the weights at their random start
    in_process("train", "seed=2", "trainer.max_epochs=1", "model.lr=1e-9", "trainer.early_stopping.enabled=false")
    in_process("evaluate")
    worse_accuracy = json.loads((project / "metrics.json").read_text())["test_accuracy"]
    assert worse_accuracy < champion_accuracy - 0.1, (worse_accuracy, champion_accuracy)  # the premise

    # without the absolute floor (register.gate.min), the comparison with the champion refuses it
    proc = run_cli(project, "register", "register.gate.min=null")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "gate failed, 'champion' stays on v1" in proc.stderr, proc.stderr[-3000:]
    result = json.loads((project / "models" / "registration.json").read_text())
    assert result["version"] == "2" and not result["passed"] and not result["alias_moved"], result
    assert result["champion_version"] == "1"
    assert "worse than the current champion" in result["reason"], result

    client = project_client(project)
    name = result["model_name"]
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    v2 = client.get_model_version(name, "2")
    assert v2.tags["aiinfra.gate.passed"] == "False" and v2.tags["aiinfra.gate.reason"] == result["reason"]

    audit = _audit(project)
    assert [(e["action"], e["version"]) for e in audit] == [
        ("registered", "1"),
        ("alias_moved", "1"),
        ("registered", "2"),
        ("gate_failed", "2"),
    ]
    refused = audit[-1]
    assert refused["kept_version"] == "1" and refused["alias"] == "champion"
    assert refused["reason"] == result["reason"] and refused["command"] == "aiinfra register register.gate.min=null"

    # with the project's floor (register.gate.min=0.9) the same version fails on the floor first
    in_process("register")
    again = json.loads((project / "models" / "registration.json").read_text())
    assert not again["alias_moved"] and "does not meet the minimum 0.9" in again["reason"], again
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert [(e["action"], e["version"], e.get("kept_version")) for e in _audit(project)[4:]] == [
        ("gate_failed", "2", "1")
    ]
