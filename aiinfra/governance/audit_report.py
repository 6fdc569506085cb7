"""``aiinfra audit report``: the pipeline's history on one self-contained HTML page.

The chain status of the run ledger and the registry audit log (:func:`aiinfra.governance.chain.verify`),
every stage run (stage, start, duration, status, CPU seconds, cost, config hash, git commit), time
per stage as inline SVG bars, the registry's events and the data-quality history of ``prepare``
(rows and changes per run). Plain HTML and inline SVG, no script and no CDN: it opens offline and
can be attached to a CI run. Standard library only.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from aiinfra.governance.chain import Report

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37;font-weight:bold}.bad{color:#cf222e;font-weight:bold}.warn{color:#9a6700}
code{font-size:.9em}ul{margin:.2em 0;padding-left:1.2em}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _short(value: Any, n: int = 12) -> str:
    text = "" if value is None else str(value)
    return text.removeprefix("sha256:")[:n]


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    """``rows`` hold HTML already escaped by the caller."""
    if not rows:
        return "<p>none yet</p>"
    numeric = numeric or set()
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _bar(value: float, top: float, width: int = 240) -> str:
    w = 0 if top <= 0 else max(1, round(width * value / top))
    return (
        f'<svg width="{width}" height="12" role="img" aria-label="{value:.2f}">'
        f'<rect width="{w}" height="12" fill="#1f77b4"/></svg>'
    )


def _num(value: Any) -> float:
    """A recorded figure as a float; an edited or missing one as 0 (verify names the edit)."""
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def _chain_section(name: str, report: Report) -> str:
    last = report.last
    status = '<span class="ok">verified</span>' if report.ok else '<span class="bad">TAMPERED</span>'
    head = f"head seq {_e(str(last.get('seq')))} <code>{_e(str(last.get('hash')))}</code>" if last else "no records yet"
    items = "".join(f'<li class="{"warn" if p.warning else "bad"}">{_e(str(p))}</li>' for p in report.problems)
    return (
        f"<p><b>{_e(name)}</b> <code>{_e(report.path)}</code>: {len(report.records)} records, {head}: {status}</p>"
        + (f"<ul>{items}</ul>" if items else "")
    )


def _runs_section(runs: list[dict[str, Any]]) -> str:
    rows = []
    for r in runs:
        usage, cost = r.get("usage") or {}, r.get("cost") or {}
        status = _e(r.get("status"))
        css = "ok" if r.get("status") == "ok" and not r.get("exit_code") else "bad"
        error = f"<br><small>{_e(r.get('error'))}</small>" if r.get("error") else ""
        total = cost.get("total")
        rows.append(
            [
                _e(r.get("seq")),
                _e(r.get("stage")),
                _e(r.get("start")),
                f"{_num(usage.get('wall_s')):.2f} s",
                f'<span class="{css}">{status}</span> ({_e(r.get("exit_code"))}){error}',
                f"{_num(usage.get('cpu_s')):.2f}",
                "" if total is None else f"{_num(total):.6f} {_e(cost.get('currency'))}",
                f"<code>{_e(_short(r.get('config_hash')))}</code>",
                f"<code>{_e(_short(r.get('git_commit'), 8))}</code>",
                f"<code>{_e(r.get('command'))}</code>",
            ]
        )
    table = _table(
        ["seq", "stage", "start (UTC)", "duration", "status", "CPU-s", "cost", "config", "git", "command"],
        rows,
        numeric={0, 3, 5, 6},
    )
    totals: dict[str, list[float]] = {}
    for r in runs:
        totals.setdefault(str(r.get("stage")), []).append(_num((r.get("usage") or {}).get("wall_s")))
    top = max((sum(v) for v in totals.values()), default=0.0)
    per_stage = _table(
        ["stage", "runs", "total wall", "mean", ""],
        [
            [_e(s), str(len(v)), f"{sum(v):.1f} s", f"{sum(v) / len(v):.2f} s", _bar(sum(v), top)]
            for s, v in totals.items()
        ],
        numeric={1, 2, 3},
    )
    return f"<h2>Time per stage</h2>{per_stage}<h2>Stage runs</h2>{table}"


def _registry_section(events: list[dict[str, Any]]) -> str:
    # shown in their own columns (or not at all); the rest of an event goes into "details"
    known = {"seq", "time", "action", "model", "model_name", "version", "alias", "user", "command", "pid"}
    known |= {"prev_hash", "hash"}
    rows = [
        [
            _e(ev.get("seq", "legacy")),
            _e(ev.get("time")),
            _e(ev.get("action")),
            _e(ev.get("model", ev.get("model_name", "")))
            + (" v" + _e(ev.get("version")) if ev.get("version") is not None else ""),
            _e(ev.get("alias")),
            _e(ev.get("user")),
            f"<code>{_e(json.dumps({k: v for k, v in ev.items() if k not in known}, default=str))}</code>",
        ]
        for ev in events
    ]
    return "<h2>Registry events</h2>" + _table(["seq", "time", "action", "model", "alias", "user", "details"], rows)


def _quality_section(runs: list[dict[str, Any]]) -> str:
    rows = []
    for r in runs:
        dq = (r.get("results") or {}).get("data_quality")
        if r.get("stage") != "prepare" or not isinstance(dq, dict):
            if r.get("stage") == "prepare" and r.get("status") != "ok":
                rows.append(
                    [_e(r.get("seq")), _e(r.get("start")), "", "", f'<span class="bad">{_e(r.get("error"))}</span>']
                )
            continue
        changes = dq.get("changes") or []
        rows_text = ", ".join(f"{k} {v}" for k, v in (dq.get("rows") or {}).items())
        listed = "".join(f"<li>{_e(c.get('message'))}</li>" for c in changes[:30])
        more = f"<li>... {len(changes) - 30} more</li>" if len(changes) > 30 else ""
        verdict = (
            f'<span class="warn">{len(changes)} change(s)</span><ul>{listed}{more}</ul>'
            if changes
            else ("no change" if dq.get("compared") else "first profile (nothing to compare)")
        )
        rows.append([_e(r.get("seq")), _e(r.get("start")), _e(rows_text), _e(dq.get("columns")), verdict])
    return "<h2>Data quality (prepare)</h2>" + _table(["seq", "start (UTC)", "rows", "columns", "changes"], rows)


def render(chains: dict[str, Report], runs: list[dict[str, Any]], events: list[dict[str, Any]]) -> str:
    """The page: ``chains`` name -> verify report; ``runs``: ledger records; ``events``: registry events."""
    status = "".join(_chain_section(name, rep) for name, rep in chains.items())
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>aiinfra audit</title><style>{_STYLE}</style></head><body>"
        "<h1>aiinfra audit: stage runs, registry events, data quality</h1>"
        f"<h2>Chain status</h2>{status}"
        f"{_runs_section(runs)}{_registry_section(events)}{_quality_section(runs)}"
        "</body></html>\n"
    )


def write_report(
    out: Path, chains: dict[str, Report], runs: list[dict[str, Any]], events: list[dict[str, Any]]
) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(chains, runs, events), encoding="utf-8")
    return out
