"""Promotion that cannot race, and only with a signed model and an approver: the compare-and-set
alias move against a real MLflow sqlite store; then one real project (prepare, two signed
trainings) where `aiinfra register` refuses a tampered model, refuses an alias move without an
allowed approver, and two concurrent registers of two different models cannot both win."""

from __future__ import annotations

import base64
import fcntl
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aiinfra.stages.register import move_alias_if
from project_helpers import cli_env, project_client

NAME = "cas-model"


@pytest.fixture
def store(tmp_path, mlflow_db_template):
    shutil.copy(mlflow_db_template, tmp_path / "mlflow.db")
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(NAME)
    for _ in range(4):
        client.create_model_version(NAME, source=(tmp_path / "artifacts").as_uri())
    return client


def _alias(client, alias="champion"):
    return client.get_registered_model(NAME).aliases.get(alias)


def test_move_alias_if_moves_only_from_the_expected_version(store):
    # not set yet: moves only when the caller expected "no version"
    assert move_alias_if(store, NAME, "champion", "1", "2") == (False, None) and _alias(store) is None
    assert move_alias_if(store, NAME, "champion", None, "1") == (True, "1")
    assert move_alias_if(store, NAME, "champion", "1", "2") == (True, "2")
    # someone else (another machine, the MLflow UI) moves it between the gate's read and the move
    store.set_registered_model_alias(NAME, "champion", "3")
    assert move_alias_if(store, NAME, "champion", "2", "4") == (False, "3")
    assert str(_alias(store)) == "3"  # the other writer's move stands: last-writer-wins is refused


@pytest.fixture
def in_process(project, monkeypatch, capsys):
    """``aiinfra ARGS`` in this process (torch and MLflow imported once): (exit code, stderr)."""
    from aiinfra.cli import main

    for key in ("MLFLOW_TRACKING_URI", "AIINFRA_MULTIRUN", "AIINFRA_PARENT_RUN_ID", "AIINFRA_TRUSTED_KEYS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(project)

    def run(*args: str) -> tuple[int, str]:
        code = main(list(args))
        return code, capsys.readouterr().err

    return run


def _audit(project: Path) -> list[dict]:
    return [json.loads(line) for line in (project / "logs" / "audit.jsonl").read_text().splitlines()]


def _blocked_on_lock(pids: list[int]) -> bool:
    """Whether every one of ``pids`` waits for a flock (Linux /proc/locks lists waiters with '->')."""
    waiting = set()
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if "->" in parts:
            waiting.add(int(parts[parts.index("->") + 4]))  # "-> FLOCK ADVISORY WRITE <pid>"
    return all(p in waiting for p in pids)


def test_register_refuses_tampered_unapproved_and_racing_promotions(project, in_process, monkeypatch):
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()).decode()
    public = base64.b64encode(key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)).decode()
    monkeypatch.setenv("AIINFRA_SIGNING_KEY", pem)
    fast = ("trainer.max_epochs=3", "trainer.checkpoint.enabled=false")
    signed = ("signing.mode=require", f'signing.trusted_keys=["{public}"]', "register.gate.min=null")
    policy = "register.policies={champion:{approvers:[alice,bob]}}"

    assert in_process("prepare")[0] == 0
    code, err = in_process("train", "seed=1", *fast, "signing.mode=require")
    assert code == 0, err[-3000:]
    assert (project / "models" / "model" / "signature.json").is_file()
    assert in_process("evaluate")[0] == 0

    # 1. a file of the logged model changed after signing: refused before anything is registered
    [weights] = [p for p in (project / "mlartifacts").rglob("artifacts/model/weights.pt")]
    original = weights.read_bytes()
    weights.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
    code, err = in_process("register", *signed)
    assert code == 2 and "refusing to register the model of run" in err and "weights.pt changed after signing" in err
    assert "Traceback" not in err and pem not in err
    client = project_client(project)
    assert client.search_registered_models() == []  # nothing registered, no alias
    weights.write_bytes(original)

    # 2. an alias with approvers: refused without an approver and with one not on the list
    code, err = in_process("register", *signed, policy)
    assert code == 2 and "'champion' moves only with an approver from its allowlist (alice, bob)" in err, err[-2000:]
    assert "register.approved_by=<name>" in err
    code, err = in_process("register", *signed, policy, "register.approved_by=mallory")
    assert code == 2 and "register.approved_by='mallory' is not one of them" in err
    name = _audit(project)[0]["model"]
    assert client.get_registered_model(name).aliases == {}

    # 3. two promotions of two different models race: both compare against "no champion" (the
    # test holds the registry lock until both have made their comparison and wait for it)
    args = [sys.executable, "-m", "aiinfra", "register", *signed, policy, "register.approved_by=alice"]
    env = cli_env(project, AIINFRA_SIGNING_KEY=pem)
    lock = (project / "logs" / ".registry.lock").open("a")
    fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
    racers: list[subprocess.Popen] = []

    def race() -> None:
        """One more register, once it has read its model and the champion and waits for the lock."""
        racers.append(subprocess.Popen(args, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 180
        while not _blocked_on_lock([p.pid for p in racers]):
            assert all(p.poll() is None for p in racers), [p.communicate()[0].decode()[-2000:] for p in racers]
            assert time.monotonic() < deadline, "the registers never reached the registry lock"
            time.sleep(0.2)

    try:
        race()  # the first model's register
        code, err = in_process("train", "seed=2", *fast, "signing.mode=require")  # the second model
        assert code == 0, err[-3000:]
        assert in_process("evaluate")[0] == 0
        race()
    finally:
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
        lock.close()
    outputs = [p.communicate(timeout=300)[0].decode() for p in racers]
    codes = sorted(p.returncode for p in racers)
    assert codes == [0, 3], (outputs, _audit(project))
    loser = outputs[[p.returncode for p in racers].index(3)]
    assert "conflict: 'champion' moved from no version to v" in loser and "rerun `aiinfra register`" in loser

    events = _audit(project)
    actions = [e["action"] for e in events]
    assert actions.count("alias_moved") == 1 and actions.count("alias_conflict") == 1, actions
    assert actions.count("alias_refused") == 3 and actions.count("registered") == 2, actions
    moved = next(e for e in events if e["action"] == "alias_moved")
    assert moved["approved_by"] == "alice" and moved["signature"] == "ok" and moved["signer"].startswith("ed25519:")
    conflict = next(e for e in events if e["action"] == "alias_conflict")
    assert conflict["current_version"] == moved["version"] and conflict["expected_version"] is None
    refused = [e for e in events if e["action"] == "alias_refused"]
    assert refused[0]["signature"]["status"] == "tampered" and "weights.pt" in refused[0]["reason"]
    assert refused[1]["approved_by"] is None and refused[2]["approved_by"] == "mallory"
    assert str(client.get_model_version_by_alias(moved["model"], "champion").version) == moved["version"]
    registration = json.loads((project / "models" / "registration.json").read_text())
    assert registration["run_id"] and registration["signature"]["status"] == "ok"
