"""``aiinfra audit``: the registry audit log is chained through ``append_audit`` (old unchained
lines kept as legacy), ``aiinfra audit verify`` run as a user runs it names a tampered event and
exits 1, usage and config errors exit 2, and the report shows the chain status and the events."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from aiinfra.errors import AiinfraError
from aiinfra.governance import chain
from aiinfra.governance.audit import append_audit, audit_path
from aiinfra.governance.audit_cli import main as audit_main
from project_helpers import REPO, cli_env


@pytest.fixture
def registry_project(tmp_path, monkeypatch):
    """A project whose registry audit log has two legacy lines (aiinfra 0.x) and three chained
    events appended by ``append_audit`` on the project's real config, and a one-record ledger."""
    from aiinfra.config.compose import compose
    from aiinfra.config.validate import validate
    from aiinfra.plugins.manager import get_plugins

    root = tmp_path / "proj"
    root.mkdir()
    shutil.copytree(REPO / "conf", root / "conf")
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    monkeypatch.chdir(root)
    cfg = validate(compose([], root / "conf"), get_plugins().registry)
    path = audit_path(cfg)
    path.parent.mkdir(parents=True)
    old = [{"action": "registered", "version": "1", "time": "2025-01-01T00:00:00+00:00", "user": "u", "pid": 1}]
    old.append(old[0] | {"action": "alias_moved", "alias": "champion"})
    path.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in old))  # the old format
    append_audit(cfg, "registered", model="demo", version="2", run_id="r2")
    append_audit(cfg, "alias_moved", model="demo", alias="champion", version="2", previous="1")
    append_audit(cfg, "alias_refused", model="demo", alias="champion", version="3", reason="test_accuracy 0.5 < 0.9")
    chain.append(root / "logs" / "ledger.jsonl", {"stage": "register", "status": "ok", "usage": {"wall_s": 1.5}})
    return root


def _verify(root, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aiinfra", "audit", "verify", *args],
        cwd=root,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_append_audit_chains_events_after_the_legacy_lines(registry_project, capsys):
    report = chain.verify(registry_project / "logs" / "audit.jsonl")
    assert report.ok and report.legacy == 2
    assert [(r["seq"], r["action"], r["version"]) for r in report.records] == [
        (0, "registered", "2"),
        (1, "alias_moved", "2"),
        (2, "alias_refused", "3"),
    ]
    assert {"time", "command", "user", "pid", "prev_hash", "hash"} <= set(report.records[0])
    assert audit_main(["verify"]) == 0
    out = capsys.readouterr().out
    assert "ledger   logs/ledger.jsonl: 1 records (seq 0..0)" in out
    assert "registry logs/audit.jsonl: 3 records (seq 0..2) + 2 legacy, head seq 2 sha256:" in out


def test_aiinfra_audit_verify_names_a_tampered_registry_event_and_exits_1(registry_project):
    path = registry_project / "logs" / "audit.jsonl"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace('"previous": "1"', '"previous": "0"')  # seq 1: who held the alias
    path.write_text("\n".join(lines) + "\n")
    proc = _verify(registry_project)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ledger   logs/ledger.jsonl: 1 records (seq 0..0)" in proc.stdout and ": verified" in proc.stdout
    assert "registry logs/audit.jsonl: 3 records (seq 0..2) + 2 legacy" in proc.stdout
    assert "TAMPERED (1 problem(s))" in proc.stdout
    assert "  edited (line 4, seq 1): its content does not match its hash" in proc.stdout
    assert _verify(registry_project, "--ledger").returncode == 0  # the ledger alone is intact


def test_usage_and_config_errors_exit_2(registry_project, tmp_path, monkeypatch):
    for argv in ([], ["verify", "--ledger", "--registry"], ["nonsense"]):
        with pytest.raises(SystemExit) as exc:
            audit_main(argv)
        assert exc.value.code == 2
    monkeypatch.chdir(tmp_path)  # no conf/config.yaml here, nor above
    with pytest.raises(AiinfraError):
        audit_main(["verify"])


def test_the_report_shows_the_chain_status_runs_and_registry_events(registry_project, capsys):
    path = registry_project / "logs" / "audit.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # the refusal removed
    out = registry_project / "reports" / "audit.html"
    assert audit_main(["report", "--out", str(out)]) == 0
    assert "chains TAMPERED: run `aiinfra audit verify`" in capsys.readouterr().out
    page = out.read_text()
    assert '<span class="bad">TAMPERED</span>' in page and "seq 2 removed from the end" in page
    assert "<td>alias_moved</td>" in page and "demo v2" in page and "<td>register</td>" in page
    assert "legacy" in page  # the old lines are listed as such
