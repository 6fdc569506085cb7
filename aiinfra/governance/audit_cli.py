"""``aiinfra audit``: verify the hash chains of the run ledger and the registry audit log, or
render their history as HTML (docs/audit.md).

    aiinfra audit verify [--ledger | --registry] [--expect-head sha256:...] [--logs DIR] [overrides]
    aiinfra audit report [--out reports/audit/index.html] [--logs DIR] [overrides]

``verify`` prints, per file, its records and head (keep the head somewhere else, e.g. in CI logs,
and pass it back with ``--expect-head``: that catches a rewrite of the whole file and its anchor),
then each problem with its line, seq and kind. Exit status: 0 valid, 1 tampered, 2 a usage or
config error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aiinfra.errors import AiinfraError
from aiinfra.governance.chain import Report, read, verify
from aiinfra.governance.ledger import LEDGER

AUDIT = "audit.jsonl"  # aiinfra.governance.audit.audit_path's file name
DEFAULT_REPORT = "reports/audit/index.html"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiinfra audit", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", metavar="verify|report", required=True)
    for name, help_ in (
        ("verify", "check the hash chains; exit 1 when tampered"),
        ("report", "write the HTML history"),
    ):
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("overrides", nargs="*", help="config overrides (paths.logs=...)")
        p.add_argument("--logs", metavar="DIR", help="the logs folder (default: the project's paths.logs)")
        if name == "verify":
            which = p.add_mutually_exclusive_group()
            which.add_argument("--ledger", action="store_true", help="only the run ledger")
            which.add_argument("--registry", action="store_true", help="only the registry audit log")
            p.add_argument(
                "--expect-head",
                action="append",
                default=[],
                metavar="HASH",
                help="a head printed by an earlier verify: it must still be a record (repeatable)",
            )
        else:
            p.add_argument("--out", metavar="FILE", help=f"default: <project>/{DEFAULT_REPORT}")
    return parser


def _logs_dir(args: argparse.Namespace) -> Path:
    """``--logs``, or ``paths.logs`` of the project's composed config (cwd: the project root)."""
    if args.logs:
        return Path(args.logs)
    import os

    from aiinfra.config.compose import compose, find_project_root
    from aiinfra.config.validate import validate
    from aiinfra.plugins.manager import get_plugins

    root = find_project_root()
    os.chdir(root)  # paths in the config are relative to the project root
    cfg = validate(compose(list(args.overrides), root / "conf"), get_plugins().registry)
    return Path(cfg.paths.logs)


def _files(args: argparse.Namespace, logs: Path) -> dict[str, Path]:
    files = {"ledger": logs / LEDGER, "registry": logs / AUDIT}
    if getattr(args, "ledger", False):
        return {"ledger": files["ledger"]}
    if getattr(args, "registry", False):
        return {"registry": files["registry"]}
    return files


def _expected_heads(expect: list[str], reports: dict[str, Report]) -> None:
    """Each ``--expect-head`` must be a record of one of the verified files; a miss is a problem
    of every verified file (it cannot say which one was rewritten)."""
    from aiinfra.governance.chain import Problem

    for head in expect:
        if not head.startswith("sha256:") or len(head) != 71:
            raise AiinfraError(
                f"--expect-head {head!r} is not a head hash.",
                hint="pass the 'sha256:' + 64 hex digits that `aiinfra audit verify` printed as the head",
            )
        if not any(rec.get("hash") == head for rep in reports.values() for rec in rep.records):
            for rep in reports.values():
                rep.problems.append(
                    Problem("head", f"the expected head {head} is not a record here: rewritten or truncated before it")
                )


def _print(name: str, report: Report) -> None:
    last = report.last
    if last is None and report.ok and not report.legacy:
        print(f"{name:<9}{report.path}: no records yet")
        return
    status = "verified" if report.ok else f"TAMPERED ({sum(not p.warning for p in report.problems)} problem(s))"
    span = f" (seq {report.records[0]['seq']}..{last['seq']})" if last else ""
    head = f", head seq {last['seq']} {last['hash']}" if last else ""
    legacy = f" + {report.legacy} legacy" if report.legacy else ""
    print(f"{name:<9}{report.path}: {len(report.records)} records{span}{legacy}{head}: {status}")
    for problem in report.problems:
        print(f"  {problem}")


def verify_command(args: argparse.Namespace) -> int:
    logs = _logs_dir(args)
    reports = {name: verify(path) for name, path in _files(args, logs).items()}
    _expected_heads(args.expect_head, reports)
    for name, report in reports.items():
        _print(name, report)
    return 0 if all(r.ok for r in reports.values()) else 1


def report_command(args: argparse.Namespace) -> int:
    from aiinfra.governance.audit_report import write_report

    logs = _logs_dir(args)
    files = _files(args, logs)
    chains = {name: verify(path) for name, path in files.items()}
    out = write_report(Path(args.out or DEFAULT_REPORT), chains, read(files["ledger"]), read(files["registry"]))
    runs = len(chains["ledger"].records)
    state = "verified" if all(c.ok for c in chains.values()) else "TAMPERED: run `aiinfra audit verify`"
    print(f"wrote {out}: {runs} stage runs, {len(chains['registry'].records)} registry events; chains {state}")
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return verify_command(args) if args.action == "verify" else report_command(args)
