"""Drift over time: one JSON line per run (``history.jsonl``) and a plot of it per feature.

The plot is a self-contained HTML page of inline SVG (no JavaScript, no CDN: these machines have
no network and the page must open anywhere), one small chart per column: its score per run, the
threshold as a dashed line, drifted runs in red; with feedback labels also the model's accuracy
per run, and the prediction and target drift.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HISTORY = "history.jsonl"
PLOT = "drift_over_time.html"


_KEPT = ("method", "score", "threshold", "drifted")


def _brief(column: Mapping[str, Any] | None) -> dict | None:
    return {k: column.get(k) for k in _KEPT} if column else None


def history_record(verdict: Mapping[str, Any]) -> dict:
    """What a run contributes to the history (small: no paths, no per-column extras)."""
    feedback = verdict.get("feedback") or {}
    return {
        "finished": verdict.get("finished"),
        "drift_detected": verdict.get("drift_detected"),
        "drift_share": verdict.get("drift_share"),
        "threshold": verdict.get("threshold"),
        "rows": verdict.get("rows", {}).get("current"),
        "current": verdict.get("current"),
        # model quality over time: accuracy on the rows whose labels have arrived
        "accuracy": feedback.get("accuracy"),
        "labelled_rows": feedback.get("labelled_rows"),
        "prediction": _brief(verdict.get("prediction")),
        # target drift: labels in a labelled file, or feedback labels joined to the log
        "target": _brief(verdict.get("target") or feedback.get("target")),
        "columns": {name: _brief(c) for name, c in verdict.get("columns", {}).items()},
    }


def append(report_dir: str | Path, verdict: Mapping[str, Any]) -> Path:
    path = Path(report_dir) / HISTORY
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(history_record(verdict), default=str) + "\n"
    with path.open("a+b") as fh:
        fh.seek(0, 2)
        if fh.tell():
            fh.seek(-1, 2)
            if fh.read(1) != b"\n":  # a torn last line (a run killed mid-write): don't glue onto it
                line = "\n" + line
        fh.write(line.encode("utf-8"))
    return path


def load(path: str | Path) -> list[dict]:
    runs = []
    p = Path(path)
    if not p.is_file():
        return runs
    for line in p.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                runs.append(json.loads(line))
            except ValueError:  # a torn last line (killed mid-write) must not hide the rest
                continue
    return runs


def _chart(name: str, points: list[tuple[int, float | None, float | None, bool]], n_runs: int) -> str:
    w, h, pad = 420, 140, 30
    values = [v for _, v, _, _ in points if v is not None] + [t for _, _, t, _ in points if t is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5

    def x(i: int) -> float:
        return pad + (w - 2 * pad) * (i / max(1, n_runs - 1))

    def y(v: float) -> float:
        return h - pad + (v - lo) / (hi - lo) * (2 * pad - h)

    line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v, _, _ in points if v is not None)
    thr = [(i, t) for i, _, t, _ in points if t is not None]
    parts = [
        f'<svg width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{pad}" y="{pad / 2}" width="{w - 2 * pad}" height="{h - 1.5 * pad}" fill="#fafafa" stroke="#ddd"/>',
        f'<text x="{pad}" y="12" font-size="12" font-family="sans-serif">{html.escape(name)}</text>',
        f'<text x="2" y="{h - pad + 4}" font-size="9">{lo:.3g}</text>',
        f'<text x="2" y="{pad + 4}" font-size="9">{hi:.3g}</text>',
    ]
    if thr:
        parts.append(
            '<polyline fill="none" stroke="#888" stroke-dasharray="4 3" points="'
            + " ".join(f"{x(i):.1f},{y(t):.1f}" for i, t in thr)
            + '"/>'
        )
    if line:
        parts.append(f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{line}"/>')
    for i, v, t, drifted in points:
        if v is not None:
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{"#d62728" if drifted else "#1f77b4"}">'
                f"<title>run {i + 1}: {v:.4g} (threshold {t})</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)


def render(history_path: str | Path, out_path: str | Path | None = None) -> Path:
    """Write the drift-over-time page for the runs in ``history_path``."""
    runs = load(history_path)
    out = Path(out_path) if out_path else Path(history_path).with_name(PLOT)
    names: list[str] = []
    for run in runs:
        for name in run.get("columns", {}):
            if name not in names:
                names.append(name)
    charts = []
    share_points = [
        (i, r.get("drift_share"), r.get("threshold"), bool(r.get("drift_detected"))) for i, r in enumerate(runs)
    ]
    charts.append(_chart("dataset drift share", share_points, len(runs)))
    accuracy = [(i, r["accuracy"], None, False) for i, r in enumerate(runs) if r.get("accuracy") is not None]
    if accuracy:
        charts.append(_chart("model accuracy (rows with feedback labels)", accuracy, len(runs)))
    for key, title in (("prediction", "prediction drift"), ("target", "target drift")):
        pts = [
            (i, r[key].get("score"), r[key].get("threshold"), bool(r[key].get("drifted")))
            for i, r in enumerate(runs)
            if r.get(key)
        ]
        if pts:
            method = next(r[key].get("method") for r in reversed(runs) if r.get(key))
            charts.append(_chart(f"{title} ({method})", pts, len(runs)))
    for name in names:
        pts = []
        for i, r in enumerate(runs):
            c = r.get("columns", {}).get(name)
            if c is not None:
                pts.append((i, c.get("score"), c.get("threshold"), bool(c.get("drifted"))))
        method = next((r["columns"][name].get("method") for r in reversed(runs) if name in r.get("columns", {})), "")
        charts.append(_chart(f"{name} ({method})", pts, len(runs)))
    first = runs[0].get("finished") if runs else "-"
    last = runs[-1].get("finished") if runs else "-"
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>aiinfra drift over time</title>"
        "<style>body{font-family:sans-serif;margin:1em} .grid{display:flex;flex-wrap:wrap;gap:8px}</style>"
        f"</head><body><h1>Drift over time</h1><p>{len(runs)} runs, {html.escape(str(first))} to "
        f"{html.escape(str(last))}. Blue: score per run; dashed: threshold; red: drifted. "
        "p-value methods (ks, chisquare, z) drift below the threshold, distances at or above it.</p>"
        f"<div class='grid'>{''.join(charts)}</div></body></html>"
    )
    out.write_text(page, encoding="utf-8")
    return out
