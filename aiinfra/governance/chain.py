"""Append-only, hash-chained JSONL files: the run ledger and the registry audit log.

Each record carries ``seq`` (0, 1, 2, ...), ``prev_hash`` (the previous record's ``hash``) and
``hash``: ``sha256:`` + the SHA-256 of the record's canonical JSON (sorted keys, no spaces)
without ``hash``. :func:`append` writes one line under an exclusive ``flock`` on the file, so two
processes appending at once still form one valid chain. :func:`verify` names every record that
was edited, deleted, reordered or duplicated, and a truncated end.

What the file alone cannot show: records removed *from the end*, whole. So each append also
writes the last ``seq`` and ``hash`` to ``<file>.head`` (the anchor); fewer records than the head
names is truncation. Someone who rewrites the file, its chain and the head together is detected
only against a head stored elsewhere (``aiinfra audit verify --expect-head sha256:...``; the
command prints the head to keep, e.g. in CI logs).

Lines written before the chain existed (``audit.jsonl`` of aiinfra 0.x: no ``hash``) are
"legacy, unchained"; the chain starts after them, and its first ``prev_hash`` is the SHA-256 of
those lines' bytes, so an edit of them breaks the chain too. Standard library only.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: ``prev_hash`` of the first record of a file without legacy lines
GENESIS = "sha256:" + "0" * 64
HEAD_SUFFIX = ".head"


def canonical(record: dict[str, Any]) -> bytes:
    """The bytes a record's hash is computed over: its JSON without ``hash``, keys sorted."""
    body = {k: v for k, v in record.items() if k != "hash"}
    # ASCII: a lone surrogate (a non-UTF-8 byte of the command line) is escaped, not a UnicodeEncodeError
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str).encode()


def record_hash(record: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical(record)).hexdigest()


def legacy_anchor(legacy: bytes) -> str:
    """``prev_hash`` of the first chained record after ``legacy`` (the unchained lines' bytes)."""
    return "sha256:" + hashlib.sha256(legacy).hexdigest() if legacy else GENESIS


def head_path(path: Path) -> Path:
    return path.with_name(path.name + HEAD_SUFFIX)


def _is_chained(obj: Any) -> bool:
    return isinstance(obj, dict) and "hash" in obj and "seq" in obj and "prev_hash" in obj


def _tail(f, size: int) -> bytes:
    """The file's last line (without its newline), read backwards in blocks: O(line), not O(file)."""
    pos, buf = size, b""
    while pos > 0:
        step = min(8192, pos)
        pos -= step
        f.seek(pos)
        buf = f.read(step) + buf  # always ends at the file's end
        body = buf[:-1] if buf.endswith(b"\n") else buf
        cut = body.rfind(b"\n")
        if cut >= 0:
            return body[cut + 1 :]
    return buf[:-1] if buf.endswith(b"\n") else buf


def _previous(f) -> tuple[int, str]:
    """(next seq, prev_hash) for a record appended to the open file ``f``."""
    size = f.seek(0, os.SEEK_END)
    last = _tail(f, size)
    try:
        obj = json.loads(last) if last.strip() else None
    except ValueError:
        obj = None
    if _is_chained(obj):
        return int(obj["seq"]) + 1, str(obj["hash"])
    # no chained record at the end (an empty file, legacy lines only, or a torn last line): look
    # through the whole file once (this happens only at the chain's start or after damage)
    f.seek(0)
    legacy, last_chained = b"", None
    for line in f.read().splitlines(keepends=True):
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        if _is_chained(rec):
            last_chained = rec
        elif last_chained is None:
            legacy += line
    if last_chained is not None:
        return int(last_chained["seq"]) + 1, str(last_chained["hash"])
    return 0, legacy_anchor(legacy)


def append(path: str | Path, record: dict[str, Any]) -> dict[str, Any]:
    """Append ``record`` to the chain in ``path`` (created with its folder); returns the record as
    written (with ``seq``, ``prev_hash``, ``hash``). Under an exclusive lock on the file: the last
    record is read, the new one written with one ``write``, flushed and fsync'd, then the head
    anchor replaced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # values JSON cannot hold (paths, numpy scalars) as the strings they are read back as, so the
    # hash is over exactly what a reader parses
    fields = {k: v for k, v in record.items() if k not in ("seq", "prev_hash", "hash")}
    body = json.loads(json.dumps(fields, default=str))
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            seq, prev = _previous(f)
            out = {"seq": seq, **body, "prev_hash": prev}
            out["hash"] = record_hash(out)
            line = json.dumps(out, ensure_ascii=True, default=str).encode() + b"\n"
            size = f.seek(0, os.SEEK_END)
            if size:
                f.seek(size - 1)
                if f.read(1) != b"\n":  # a torn last line: end it, so this record stays whole
                    line = b"\n" + line
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
            _write_head(path, seq, out["hash"])
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return out


def _write_head(path: Path, seq: int, hash_: str) -> None:
    head = head_path(path)
    tmp = head.with_name(f"{head.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"seq": seq, "hash": hash_}) + "\n")
    os.replace(tmp, head)  # atomic: a reader sees the old head or the new one


def read_head(path: str | Path) -> dict[str, Any] | None:
    try:
        head = json.loads(head_path(Path(path)).read_text())
        return head if isinstance(head, dict) and "seq" in head and "hash" in head else None
    except (OSError, ValueError):
        return None


@dataclass
class Problem:
    """One finding of :func:`verify`. ``kind``: edited, deleted, reordered, duplicated, truncated,
    inserted, corrupt, head (the anchor does not match). ``warning``: reported, not tampering."""

    kind: str
    message: str
    line: int | None = None  # 1-based line in the file
    seq: int | None = None
    warning: bool = False

    def __str__(self) -> str:
        where = ", ".join(x for x in (f"line {self.line}" if self.line else "", _seq(self.seq)) if x)
        return f"{'warning' if self.warning else self.kind}{f' ({where})' if where else ''}: {self.message}"


def _seq(seq: int | None) -> str:
    return f"seq {seq}" if seq is not None else ""


@dataclass
class Report:
    """What :func:`verify` found in one file."""

    path: Path
    records: list[dict[str, Any]]  # the chained records, in file order
    legacy: int  # unchained lines before the chain
    problems: list[Problem]
    head: dict[str, Any] | None  # the anchor file's content

    @property
    def ok(self) -> bool:
        return not any(not p.warning for p in self.problems)

    @property
    def last(self) -> dict[str, Any] | None:
        return self.records[-1] if self.records else None


def verify(path: str | Path, expect_heads: list[str] | None = None) -> Report:
    """Check the chain in ``path``; ``expect_heads``: hashes kept elsewhere that must be records of it."""
    path = Path(path)
    problems: list[Problem] = []
    raw = path.read_bytes() if path.is_file() else b""
    lines = raw.split(b"\n")
    partial_end = bool(lines and lines[-1])  # the file does not end with a newline
    if not partial_end:
        lines = lines[:-1]
    records: list[tuple[int, dict[str, Any]]] = []  # (line number, record)
    legacy_bytes, legacy = b"", 0
    for i, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if _is_chained(obj):
            records.append((i, obj))
            continue
        last_line = i == len(lines)
        if obj is None and last_line and partial_end:
            problems.append(Problem("truncated", "the last line is a partial record (cut short)", line=i))
        elif not records and isinstance(obj, dict):
            legacy += 1
            legacy_bytes += text + b"\n"
        elif obj is None:
            problems.append(Problem("corrupt", "not a JSON record (edited, or a torn write)", line=i))
        else:
            problems.append(Problem("inserted", "an unchained record inside the chain", line=i))
    if legacy:
        problems.append(Problem("legacy", f"{legacy} legacy, unchained line(s) before the chain", warning=True))

    valid: dict[int, bool] = {}
    for i, rec in records:
        ok = rec.get("hash") == record_hash(rec)
        valid[i] = ok
        if not ok:
            problems.append(Problem("edited", "its content does not match its hash", line=i, seq=rec.get("seq")))

    seqs = [rec.get("seq") for _, rec in records]
    if any(not isinstance(s, int) for s in seqs):
        problems.append(Problem("corrupt", "a record's seq is not an integer"))
    else:
        problems += _order_problems(records)
        problems += _link_problems(records, valid, legacy_anchor(legacy_bytes))

    head = read_head(path)
    problems += _head_problems(path, records, head)
    for expected in expect_heads or []:
        if not any(rec.get("hash") == expected for _, rec in records):
            problems.append(
                Problem("head", f"the expected head {expected} is not a record of this file (rewritten or truncated)")
            )
    return Report(path, [rec for _, rec in records], legacy, problems, head)


def _order_problems(records: list[tuple[int, dict[str, Any]]]) -> list[Problem]:
    problems: list[Problem] = []
    if not records:
        return problems
    seen: dict[int, int] = {}
    for line, rec in records:
        seq = rec["seq"]
        if seq in seen:
            problems.append(Problem("duplicated", f"seq {seq} also at line {seen[seq]}", line=line, seq=seq))
        else:
            seen[seq] = line
    # the gaps between the seqs present (not range(max + 1): an edited seq of 10**12 must not hang)
    present = sorted(seen)
    gaps = [(0, present[0] - 1)] if present[0] > 0 else []
    gaps += [(a + 1, b - 1) for a, b in zip(present, present[1:], strict=False) if b > a + 1]
    for start, end in gaps:
        after = max((ln for s, ln in seen.items() if s < start), default=None)
        span = f"seq {start}" if start == end else f"seqs {start}..{end}"
        where = f" (after line {after})" if after else " (at the start)"
        problems.append(Problem("deleted", f"{span} missing{where}", seq=start))
    highest = -1
    for line, rec in records:
        seq = rec["seq"]
        if seq < highest:
            problems.append(Problem("reordered", f"comes after seq {highest} in the file", line=line, seq=seq))
        highest = max(highest, seq)
    return problems


def _link_problems(records: list[tuple[int, dict[str, Any]]], valid: dict[int, bool], first_prev: str) -> list[Problem]:
    """prev_hash of each record against the hash of the record before it (where both are
    consecutive and intact: a deletion or a reorder is already named above)."""
    problems: list[Problem] = []
    if records and records[0][1]["seq"] == 0 and records[0][1].get("prev_hash") != first_prev:
        line = records[0][0]
        what = "the legacy lines before the chain were changed" if first_prev != GENESIS else "not the chain's start"
        problems.append(Problem("edited", f"prev_hash does not match: {what}", line=line, seq=0))
    for (_, a), (line, b) in zip(records, records[1:], strict=False):
        if b["seq"] == a["seq"] + 1 and valid.get(line) and b.get("prev_hash") != a.get("hash"):
            problems.append(
                Problem(
                    "edited",
                    f"prev_hash is not seq {a['seq']}'s hash: seq {a['seq']} was rewritten (its hash recomputed)",
                    line=line,
                    seq=b["seq"],
                )
            )
    return problems


def _head_problems(path: Path, records: list[tuple[int, dict[str, Any]]], head: dict[str, Any] | None) -> list[Problem]:
    name = head_path(path).name
    if head is None:
        if records:
            missing = f"the head anchor {name} is missing: records removed from the end cannot be ruled out"
            return [Problem("head", missing)]
        return []
    last = records[-1][1] if records else None
    by_seq = {rec["seq"]: rec for _, rec in records if isinstance(rec.get("seq"), int)}
    top = max(by_seq, default=-1)
    seq, hash_ = head.get("seq"), head.get("hash")
    if not isinstance(seq, int):
        return [Problem("head", f"{name} is not a head anchor")]
    if seq > top:
        span = f"seq {seq}" if seq == top + 1 else f"seqs {top + 1}..{seq}"
        return [Problem("truncated", f"{span} removed from the end ({name} names seq {seq}, {hash_})", seq=top + 1)]
    if seq not in by_seq:
        return [Problem("head", f"{name} names seq {seq}, which is not a record of this file", seq=seq)]
    if by_seq[seq].get("hash") != hash_:
        return [Problem("head", f"seq {seq}'s hash is not the one {name} recorded: the record was rewritten", seq=seq)]
    if last is not None and seq < top:
        return [
            Problem(
                "head",
                f"{name} names seq {seq}, the file ends at seq {top} (a crash between a write and its anchor?)",
                warning=True,
            )
        ]
    return []


def read(path: str | Path) -> list[dict[str, Any]]:
    """Every JSON record of ``path`` (legacy lines included), skipping lines that do not parse:
    for readers (``aiinfra costs``, the report); :func:`verify` is the check."""
    out = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return out
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            # a torn append (a crash mid-write) stays in a chained file for good: skip it, say so
            log.warning("%s line %d is not JSON: skipped (`aiinfra audit verify` names it)", path, n)
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out
