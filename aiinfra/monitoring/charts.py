"""Drift and model quality over time: plotly charts on one self-contained HTML page.

The page (``drift_over_time.html``) inlines plotly.js from the plotly package's bundled file
(``plotly/package_data/plotly.min.js``, installed with Evidently): no CDN and nothing downloaded
at run time, so it opens on a machine without network. The figures are plain dicts in plotly's
JSON schema, so drawing them costs no plotly import (the monitor's run time stays the verdict's);
the page also carries them as JSON (``<script type="application/json" id="aiinfra-figures">``)
for tests and tools.

Axes have the range of what they show: shares, p-values and accuracy span exactly [0, 1];
distances, MAE and RMSE start at 0. Values are in the hover text, not written over the points.
Standard library only.
"""

from __future__ import annotations

import datetime as dt
import html
import importlib.util
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

FIGURES_ID = "aiinfra-figures"
#: methods whose score is a p-value (drift below the threshold); the others are distances
P_VALUES = {"ks", "chisquare", "z"}
UNIT = [0.0, 1.0]
_BLUE, _RED, _GREY = "#1f77b4", "#d62728", "#7f7f7f"
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def plotly_js() -> str | None:
    """The bundled plotly.js of the installed plotly package, or None when it is not installed."""
    spec = importlib.util.find_spec("plotly")  # finds the package without importing it
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return None


def _time(text: Any) -> str | None:
    """An ISO time as plotly's date axis reads it (UTC, no offset: plotly.js ignores offsets)."""
    try:
        value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _clean(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _range_from_zero(*series: Sequence[float | None]) -> list[float]:
    top = max((v for s in series for v in s if v is not None), default=0.0)
    return [0.0, top * 1.1 if top > 0 else 1.0]


def _metric(name: str, x: list, y: list, hover: list[str], drifted: list[bool] | None = None, color: str = _BLUE):
    marker: dict[str, Any] = {"size": 7, "color": [(_RED if d else color) for d in drifted] if drifted else color}
    return {
        "type": "scatter",
        "mode": "lines+markers",
        "name": name,
        "x": x,
        "y": y,
        "hovertext": hover,
        "hovertemplate": "%{hovertext}<extra>" + html.escape(name) + "</extra>",
        "line": {"color": color, "width": 2},
        "marker": marker,
        "cliponaxis": False,  # a point at exactly 0 or 1 is drawn whole, not cut by the frame
        "meta": {"role": "metric"},
    }


def _threshold(name: str, x: list, y: list):
    return {
        "type": "scatter",
        "mode": "lines",
        "name": name,
        "x": x,
        "y": y,
        "line": {"color": _GREY, "dash": "dash", "width": 1.5},
        "hovertemplate": html.escape(name) + ": %{y:.4g}<extra></extra>",
        "meta": {"role": "threshold"},
    }


def _figure(key: str, title: str, traces: list[dict], y_title: str, y_range: list[float], x_title: str) -> dict:
    return {
        "id": key,
        "data": traces,
        "layout": {
            "title": {"text": html.escape(title), "font": {"size": 14}, "x": 0.02},
            "height": 320,
            "margin": {"l": 64, "r": 16, "t": 44, "b": 56},
            "xaxis": {"title": {"text": x_title}, "automargin": True},
            "yaxis": {"title": {"text": y_title}, "range": y_range, "automargin": True, "zeroline": True},
            "legend": {"orientation": "h", "y": -0.3},
            "showlegend": True,
        },
    }


def _score_figure(key: str, title: str, runs: list[dict], x: list, x_title: str, pick) -> dict | None:
    """One column's (or the prediction's) drift score per run with its threshold."""
    entries = [pick(r) or {} for r in runs]
    if not any(e.get("score") is not None for e in entries):
        return None
    method = next((e.get("method") for e in reversed(entries) if e.get("method")), "")
    scores = [_clean(e.get("score")) for e in entries]
    limits = [_clean(e.get("threshold")) for e in entries]
    hover = [
        f"{e.get('method')} {s:.4g} (threshold {t if t is not None else '-'}){' DRIFT' if e.get('drifted') else ''}"
        if s is not None
        else "no score"
        for e, s, t in zip(entries, scores, limits, strict=True)
    ]
    p_value = method in P_VALUES
    traces = [_metric(f"{method} score", x, scores, hover, [bool(e.get("drifted")) for e in entries])]
    if any(t is not None for t in limits):
        traces.append(_threshold("threshold", x, limits))
    y_title = "p-value (drift below the threshold)" if p_value else "distance (drift at or above the threshold)"
    y_range = UNIT if p_value else _range_from_zero(scores, limits)
    return _figure(key, f"{title} ({method})", traces, y_title, y_range, x_title)


def _share_lines(key: str, title: str, runs: list[dict], x: list, x_title: str, field: str, limit: str | None):
    """One trace per column of a share (missing, unseen) that is above zero in some run."""
    names: list[str] = []
    for r in runs:
        for name, c in (r.get("columns") or {}).items():
            if c and field in c and name not in names:
                names.append(name)
    traces = []
    for name in names:
        values = [_clean(((r.get("columns") or {}).get(name) or {}).get(field)) for r in runs]
        if not any(v for v in values):
            continue  # a column that never had any would only crowd the chart
        hover = [f"{name}: {v:.2%}" if v is not None else f"{name}: -" for v in values]
        traces.append(_metric(name, x, values, hover, color=_PALETTE[len(traces) % len(_PALETTE)]))
    if not traces:
        return None
    if limit:
        limits = [_clean((r.get("thresholds") or {}).get(limit)) for r in runs]
        if any(v is not None for v in limits):
            traces.append(_threshold(f"monitor.{limit}", x, limits))
    return _figure(key, title, traces, "share of the window's rows", UNIT, x_title)


def figures(runs: list[Mapping[str, Any]]) -> list[dict]:
    """The charts of a history (oldest run first), as plotly figure dicts."""
    runs = [dict(r) for r in runs]
    stamps = [_time(r.get("finished")) for r in runs]
    if runs and all(stamps):
        x, x_title = stamps, "run finished (UTC)"
    else:
        x, x_title = list(range(1, len(runs) + 1)), "run"
    out: list[dict] = []

    share = [_clean(r.get("drift_share")) for r in runs]
    share_limit = [_clean(r.get("threshold")) for r in runs]
    hover = [
        f"{s:.3f} of columns drifted{' DRIFT' if r.get('drift_detected') else ''}, {r.get('rows')} rows"
        if s is not None
        else "-"
        for r, s in zip(runs, share, strict=True)
    ]
    traces = [_metric("drift share", x, share, hover, [bool(r.get("drift_detected")) for r in runs])]
    if any(v is not None for v in share_limit):
        traces.append(_threshold("monitor.drift_share", x, share_limit))
    out.append(_figure("drift_share", "Dataset drift share", traces, "share of columns drifted", UNIT, x_title))

    accuracy = [_clean(r.get("accuracy")) for r in runs]
    if any(v is not None for v in accuracy):
        hover = [
            f"accuracy {v:.4f} on {r.get('labelled_rows')} labelled rows" if v is not None else "no labels"
            for r, v in zip(runs, accuracy, strict=True)
        ]
        traces = [_metric("accuracy", x, accuracy, hover)]
        limits = [_clean((r.get("thresholds") or {}).get("min_accuracy")) for r in runs]
        if any(v is not None for v in limits):
            traces.append(_threshold("monitor.min_accuracy", x, limits))
        out.append(_figure("accuracy", "Model accuracy (rows with feedback labels)", traces, "accuracy", UNIT, x_title))

    errors = {key: [_clean(r.get(key)) for r in runs] for key in ("mae", "rmse")}
    if any(v is not None for values in errors.values() for v in values):
        traces, limits_all = [], []
        for i, (key, values) in enumerate(errors.items()):
            hover = [
                f"{key.upper()} {v:.4g} on {r.get('labelled_rows')} labelled rows" if v is not None else "no labels"
                for r, v in zip(runs, values, strict=True)
            ]
            traces.append(_metric(key.upper(), x, values, hover, color=_PALETTE[i]))
        for key in ("mae", "rmse"):
            limits = [_clean((r.get("thresholds") or {}).get(f"max_{key}")) for r in runs]
            if any(v is not None for v in limits):
                traces.append(_threshold(f"monitor.max_{key}", x, limits))
                limits_all.append(limits)
        y_range = _range_from_zero(*errors.values(), *limits_all)
        title = "Model error (rows with feedback labels)"
        out.append(_figure("regression_error", title, traces, "target units", y_range, x_title))

    for key, title in (("prediction", "Prediction drift"), ("target", "Target drift (labels)")):
        fig = _score_figure(key, title, runs, x, x_title, lambda r, key=key: r.get(key))
        if fig:
            out.append(fig)

    missing = _share_lines(
        "missing_share", "Missing values per column", runs, x, x_title, "missing_share_current", None
    )
    if missing:
        out.append(missing)
    unseen = _share_lines(
        "unseen_share", "Unseen categories per column", runs, x, x_title, "unseen_share_current", "max_unseen_share"
    )
    if unseen:
        out.append(unseen)

    names: list[str] = []
    for r in runs:
        for name in r.get("columns") or {}:
            if name not in names:
                names.append(name)
    for name in names:
        fig = _score_figure(
            f"column:{name}", name, runs, x, x_title, lambda r, name=name: (r.get("columns") or {}).get(name)
        )
        if fig:
            out.append(fig)
    return out


def _json_for_script(data: Any) -> str:
    """JSON that is safe inside a <script> element (no "</" can close it)."""
    return json.dumps(data, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")


def page(runs: list[Mapping[str, Any]], js: str | None) -> str:
    figs = figures(runs)
    first = runs[0].get("finished") if runs else "-"
    last = runs[-1].get("finished") if runs else "-"
    cells = "".join(f'<div class="chart" id="chart-{i}"></div>' for i in range(len(figs)))
    if js is None:
        library = ""
        draw = "<p><b>plotly.js was not found</b> (install plotly): the figures are in the JSON above.</p>"
    else:
        library = f"<script>{js}</script>"
        draw = (
            "<script>const figs=JSON.parse(document.getElementById('"
            + FIGURES_ID
            + "').textContent);figs.forEach((f,i)=>Plotly.newPlot('chart-'+i,f.data,f.layout,"
            "{displaylogo:false,responsive:true}));</script>"
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>aiinfra drift over time</title>"
        f"{library}<style>body{{font-family:sans-serif;margin:1em}}"
        ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px}"
        ".chart{border:1px solid #ddd;min-height:320px}</style></head><body>"
        f"<h1>Drift over time</h1><p>{len(runs)} runs, {html.escape(str(first))} to {html.escape(str(last))}. "
        "Red points: the run drifted; dashed: thresholds. p-value methods (ks, chisquare, z) drift below "
        "their threshold, distances (wasserstein, psi, jensenshannon) at or above it. Hover a point for "
        "its value.</p>"
        f'<script type="application/json" id="{FIGURES_ID}">{_json_for_script(figs)}</script>'
        f"<div class='grid'>{cells}</div>{draw}</body></html>"
    )


def write_page(runs: list[Mapping[str, Any]], out: str | Path) -> Path:
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page(runs, plotly_js()), encoding="utf-8")
    tmp.replace(out)  # a browser open on the page never reads half of it
    return out


def read_figures(path: str | Path) -> list[dict]:
    """The figures a page carries (its JSON element)."""
    text = Path(path).read_text(encoding="utf-8")
    start_tag = f'<script type="application/json" id="{FIGURES_ID}">'
    start = text.index(start_tag) + len(start_tag)
    return json.loads(text[start : text.index("</script>", start)])
