"""The hash chain of the run ledger and the registry audit log: every kind of tampering is found
and named (by :func:`chain.verify` and by ``aiinfra audit verify``, in process), legacy lines do not
crash it, and two processes appending at once keep one valid chain."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from aiinfra.governance import chain
from aiinfra.governance.audit_cli import main as audit_main


def _chain(path: Path, n: int = 6) -> list[dict]:
    return [chain.append(path, {"stage": "train", "i": i, "nested": {"x": [i, 0.5]}}) for i in range(n)]


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _write(path: Path, lines: list[str], end: str = "\n") -> None:
    path.write_text("\n".join(lines) + end)


def _problems(path: Path) -> list[tuple[str, int | None, int | None]]:
    return [(p.kind, p.line, p.seq) for p in chain.verify(path).problems if not p.warning]


def _cli(logs: Path, capsys, *args: str) -> tuple[int, str]:
    code = audit_main(["verify", "--ledger", "--logs", str(logs), *args])
    return code, capsys.readouterr().out


@pytest.fixture
def ledger(tmp_path) -> Path:
    path = tmp_path / "logs" / "ledger.jsonl"
    _chain(path)
    return path


def test_an_untouched_chain_verifies_and_the_cli_prints_its_head(ledger, capsys):
    records = [json.loads(line) for line in _lines(ledger)]
    assert [r["seq"] for r in records] == list(range(6))
    assert records[0]["prev_hash"] == chain.GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(records, records[1:], strict=False))
    assert json.loads(chain.head_path(ledger).read_text()) == {"seq": 5, "hash": records[-1]["hash"]}
    assert chain.verify(ledger).problems == []
    code, out = _cli(ledger.parent, capsys)
    assert code == 0, out
    assert f"6 records (seq 0..5), head seq 5 {records[-1]['hash']}: verified" in out


def test_an_edited_field_is_named(ledger, capsys):
    lines = _lines(ledger)
    lines[2] = lines[2].replace('"i": 2', '"i": 7')
    _write(ledger, lines)
    assert _problems(ledger) == [("edited", 3, 2)]
    code, out = _cli(ledger.parent, capsys)
    assert code == 1
    assert "TAMPERED" in out and "edited (line 3, seq 2): its content does not match its hash" in out


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(ledger):
    lines = _lines(ledger)
    forged = json.loads(lines[2]) | {"i": 99}
    forged["hash"] = chain.record_hash(forged)
    lines[2] = json.dumps(forged)
    _write(ledger, lines)
    [problem] = [p for p in chain.verify(ledger).problems if not p.warning]
    assert (problem.kind, problem.seq) == ("edited", 3) and "seq 2 was rewritten" in problem.message


def test_a_deleted_middle_record_is_named(ledger, capsys):
    lines = _lines(ledger)
    del lines[3]
    _write(ledger, lines)
    assert _problems(ledger) == [("deleted", None, 3)]
    code, out = _cli(ledger.parent, capsys)
    assert code == 1 and "deleted (seq 3): seq 3 missing (after line 3)" in out


def test_two_swapped_records_are_named_as_reordered(ledger, capsys):
    lines = _lines(ledger)
    lines[1], lines[2] = lines[2], lines[1]
    _write(ledger, lines)
    assert _problems(ledger) == [("reordered", 3, 1)]
    code, out = _cli(ledger.parent, capsys)
    assert code == 1 and "reordered (line 3, seq 1): comes after seq 2 in the file" in out


def test_a_duplicated_record_is_named(ledger):
    lines = _lines(ledger)
    _write(ledger, [*lines[:3], lines[1], *lines[3:]])
    kinds = _problems(ledger)
    assert ("duplicated", 4, 1) in kinds


def test_a_partially_truncated_last_record_is_named(ledger, capsys):
    text = ledger.read_text()
    ledger.write_text(text[: len(text) - 40])  # the last line cut short, no newline
    assert ("truncated", 6, None) in _problems(ledger)
    code, out = _cli(ledger.parent, capsys)
    assert code == 1 and "truncated (line 6): the last line is a partial record" in out


def test_a_dropped_last_record_is_caught_through_the_head_anchor(ledger, capsys):
    lines = _lines(ledger)
    _write(ledger, lines[:-1])
    assert _problems(ledger) == [("truncated", None, 5)]
    code, out = _cli(ledger.parent, capsys)
    assert code == 1 and "truncated (seq 5): seq 5 removed from the end (ledger.jsonl.head names seq 5" in out
    # removing the anchor too does not hide it: a chain without its anchor is a problem
    chain.head_path(ledger).unlink()
    assert [k for k, _, _ in _problems(ledger)] == ["head"]


def test_a_rewrite_of_file_and_anchor_is_caught_only_by_an_expected_head(tmp_path, capsys):
    path = tmp_path / "ledger.jsonl"
    kept = _chain(path, 3)[-1]["hash"]  # what CI printed and stored
    path.unlink()
    chain.head_path(path).unlink()
    _chain(path, 2)  # a consistent chain, rewritten from scratch
    assert chain.verify(path).ok
    code, out = _cli(tmp_path, capsys, "--expect-head", kept)
    assert code == 1 and f"the expected head {kept} is not a record here" in out
    code, _ = _cli(tmp_path, capsys, "--expect-head", chain.verify(path).last["hash"])
    assert code == 0


def test_a_bad_expected_head_is_a_usage_error(ledger):
    from aiinfra.errors import AiinfraError

    with pytest.raises(AiinfraError, match="not a head hash"):
        audit_main(["verify", "--logs", str(ledger.parent), "--expect-head", "abc"])


def test_legacy_unchained_lines_are_reported_and_protected(tmp_path, capsys):
    path = tmp_path / "audit.jsonl"
    legacy = [json.dumps({"time": "2025-01-01T00:00:00", "action": "alias_moved", "version": str(v)}) for v in (1, 2)]
    _write(path, legacy)
    assert chain.verify(path).ok  # legacy only: a warning, no crash
    _chain(path, 3)
    report = chain.verify(path)
    assert report.ok and report.legacy == 2 and [r["seq"] for r in report.records] == [0, 1, 2]
    assert [p.kind for p in report.problems] == ["legacy"]
    code, out = audit_main(["verify", "--registry", "--logs", str(tmp_path)]), capsys.readouterr().out
    assert code == 0 and "3 records (seq 0..2) + 2 legacy" in out and "2 legacy, unchained line(s)" in out
    lines = _lines(path)
    lines[0] = lines[0].replace('"1"', '"9"')  # the first chained record anchors the legacy bytes
    _write(path, lines)
    assert _problems(path) == [("edited", 3, 0)]


def test_an_append_after_a_torn_write_keeps_the_new_record_whole(ledger):
    with ledger.open("a") as f:
        f.write('{"seq": 6, "stage": "tr')  # a crash mid-write
    record = chain.append(ledger, {"stage": "evaluate"})
    assert record["seq"] == 6
    assert json.loads(_lines(ledger)[-1])["stage"] == "evaluate"
    assert _problems(ledger) == [("corrupt", 7, None)]  # the torn line stays visible


def _append_many(path: str, tag: str, n: int) -> None:
    for i in range(n):
        chain.append(path, {"writer": tag, "i": i})


def test_two_processes_appending_at_once_keep_one_valid_chain(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(path), tag, 200)) for tag in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    report = chain.verify(path)
    assert report.problems == []
    assert [r["seq"] for r in report.records] == list(range(400))
    writers = [r["writer"] for r in report.records]
    assert writers.count("a") == writers.count("b") == 200
    # they really interleaved (not one process after the other), or the lock was never contended
    assert sum(x != y for x, y in zip(writers, writers[1:], strict=False)) >= 2


def test_an_absurd_seq_and_a_head_naming_a_missing_record_are_problems_not_crashes(ledger):
    """Tampered input is reported, never a hang or a traceback: a seq edited to 10**12 (no
    range(10**12) scan) and a head anchor naming a seq the file does not hold."""
    lines = _lines(ledger)
    record = json.loads(lines[5])
    record["seq"] = 10**12
    lines[5] = json.dumps(record)
    _write(ledger, lines)
    kinds = {kind for kind, _, _ in _problems(ledger)}
    assert "deleted" in kinds or "edited" in kinds, kinds

    head = chain.head_path(ledger)
    head.write_text(json.dumps({"seq": -3, "hash": "sha256:0"}))
    assert any(p.kind == "head" and "-3" in str(p) for p in chain.verify(ledger).problems)


def test_a_non_utf8_command_line_argument_is_recorded_not_a_crash(tmp_path):
    path = tmp_path / "audit.jsonl"
    odd = b"model-\xff".decode("utf-8", "surrogateescape")  # how Python passes a non-UTF-8 argv byte
    chain.append(path, {"action": "registered", "command": f"aiinfra register {odd}"})
    assert chain.verify(path).ok
