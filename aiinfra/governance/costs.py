"""What stages, model versions and serving cost, from recorded figures (``aiinfra costs``).

Reads the run ledger (``<paths.logs>/ledger.jsonl``: one record per stage run with its
``usage`` and ``cost``) and the servers' usage files (``<paths.logs>/usage/serving-*.jsonl``:
cumulative process counters every 60 s); prices serving at the rate card. Also the names under
which the train and evaluate stages record their figures in MLflow (:func:`resource_metrics`).

Standard library only (the CLI, :mod:`aiinfra.governance.costs_cli`, asks MLflow for an alias).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiinfra.errors import AiinfraError
from aiinfra.governance.chain import read
from aiinfra.governance.resources import Usage, price

LEDGER = "ledger.jsonl"
USAGE_DIR = "usage"
MB = 1024 * 1024


# --------------------------------------------------------------------------------------------
# what a stage records about itself (MLflow metrics and tags, metrics.json, train_run.json)


def resource_metrics(usage: Usage, cost: dict[str, Any], stage: str | None = None) -> dict[str, float]:
    """MLflow metrics of a stage's usage and cost: ``resources.cpu_s``... ``cost.total``; with
    ``stage`` (evaluate): ``resources.evaluate.cpu_s``... ``cost.evaluate.total``. GPU figures
    only where a GPU was used."""
    r = f"resources.{stage}." if stage else "resources."
    c = f"cost.{stage}." if stage else "cost."
    out = {
        f"{r}cpu_s": usage.cpu_s,
        f"{r}wall_s": usage.wall_s,
        f"{r}peak_rss_mb": usage.peak_rss_bytes / MB,
        f"{r}read_mb": usage.read_bytes / MB,
        f"{r}write_mb": usage.write_bytes / MB,
    }
    if usage.gpu_s:
        out[f"{r}gpu_s"] = usage.gpu_s
        out[f"{r}gpu_peak_mb"] = usage.gpu_peak_bytes / MB
    out.update({f"{c}{k}": float(cost[k]) for k in ("total", "cpu", "memory", "gpu")})
    return out


def cost_tags(currency: str, labels: dict[str, str]) -> dict[str, str]:
    """``cost.currency`` and one ``cost.label.<k>`` per allocation label (``costs.labels``)."""
    return {"cost.currency": currency, **{f"cost.label.{k}": str(v) for k, v in labels.items()}}


def summary(usage: Usage, cost: dict[str, Any]) -> dict[str, Any]:
    """The short form kept in metrics.json (``resources.train`` / ``resources.evaluate``)."""
    return {
        "cpu_s": round(usage.cpu_s, 3),
        "wall_s": round(usage.wall_s, 3),
        "peak_rss_mb": round(usage.peak_rss_bytes / MB, 1),
        "gpu_s": round(usage.gpu_s, 3),
        "gpu_peak_mb": round(usage.gpu_peak_bytes / MB, 1),
        "cost": round(float(cost["total"]), 8),
        "currency": cost["currency"],
    }


# --------------------------------------------------------------------------------------------
# reading the records


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """The ledger's records, in order. A missing file is one error naming it and the fix; a line
    that is not JSON (a write cut short) is skipped with a warning (``aiinfra audit verify`` says more)."""
    if not path.is_file():
        raise AiinfraError(
            f"no run ledger at {path}: nothing has been recorded yet.",
            hint="run a stage first (`aiinfra prepare`, `aiinfra train` ...); every stage run appends to it "
            "(audit.ledger=true)",
        )
    return read(path)


def read_usage_files(usage_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """``serving-<host>-<pid>.jsonl`` file name -> its lines (bad lines skipped: a server killed
    mid-write leaves at most its last line cut)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for f in sorted(usage_dir.glob("serving-*.jsonl")) if usage_dir.is_dir() else []:
        lines = []
        for line in f.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        out[f.name] = lines
    return out


_NO_USAGE = {"wall_s": 0, "cpu_user_s": 0, "cpu_system_s": 0, "peak_rss_bytes": 0, "read_bytes": 0, "write_bytes": 0}


def _usage(record: dict[str, Any]) -> Usage:
    return Usage.from_dict({**_NO_USAGE, **(record.get("usage") or {})})


def _cost(record: dict[str, Any], rates: Any) -> float:
    """The record's recorded cost; priced at today's rate card only when it carries none."""
    cost = record.get("cost") or {}
    if "total" in cost:
        return float(cost["total"])
    return float(price(_usage(record), rates)["total"])


def _ref(record: dict[str, Any]) -> str:
    results = record.get("results") or {}
    if results.get("version"):
        return f"{results.get('model_name', '?')} v{results['version']}"
    return str(results.get("run_id") or "-")


# --------------------------------------------------------------------------------------------
# the tables


def run_rows(records: Iterable[dict[str, Any]], rates: Any) -> list[dict[str, Any]]:
    """One row per ledger record: stage, start, status, wall, CPU-s, peak MB, cost, run/version."""
    rows = []
    for r in records:
        u = _usage(r)
        rows.append(
            {
                "seq": r.get("seq"),
                "stage": r.get("stage"),
                "start": r.get("start"),
                "status": r.get("status"),
                "wall_s": round(u.wall_s, 3),
                "cpu_s": round(u.cpu_s, 3),
                "peak_mb": round(u.peak_rss_bytes / MB, 1),
                "gpu_s": round(u.gpu_s, 3),
                "cost": _cost(r, rates),
                "currency": (r.get("cost") or {}).get("currency", rates.currency),
                "ref": _ref(r),
                "run_id": (r.get("results") or {}).get("run_id"),
            }
        )
    return rows


def versions_in_ledger(records: Iterable[dict[str, Any]], model_name: str) -> dict[str, str]:
    """version -> run id, from the ledger's register records of ``model_name``."""
    out: dict[str, str] = {}
    for r in records:
        results = r.get("results") or {}
        mine = r.get("stage") == "register" and results.get("model_name") == model_name
        if mine and results.get("version") and results.get("run_id"):
            out[str(results["version"])] = str(results["run_id"])
    return out


def _stage_total(records: list[dict[str, Any]], run_id: str, stage: str, rates: Any) -> dict[str, Any]:
    mine = [r for r in records if r.get("stage") == stage and (r.get("results") or {}).get("run_id") == run_id]
    usages = [_usage(r) for r in mine]
    return {
        "runs": len(mine),
        "wall_s": round(sum(u.wall_s for u in usages), 3),
        "cpu_s": round(sum(u.cpu_s for u in usages), 3),
        "peak_mb": round(max((u.peak_rss_bytes for u in usages), default=0) / MB, 1),
        "gpu_s": round(sum(u.gpu_s for u in usages), 3),
        "cost": sum(_cost(r, rates) for r in mine),
    }


def version_costs(records: list[dict[str, Any]], versions: dict[str, str], version: str, rates: Any) -> dict[str, Any]:
    """What model version ``version`` cost: its run's train, evaluate and register records, and
    the trainings of every earlier version (the retrains that led to it): the total to date.
    ``versions``: version -> run id of the model's versions."""
    if version not in versions:
        raise AiinfraError(
            f"version {version} has no run id in the ledger or the registry.",
            hint=f"versions known: {', '.join(sorted(versions, key=_vkey)) or '(none)'}",
        )
    run_id = versions[version]
    stages = {s: _stage_total(records, run_id, s, rates) for s in ("train", "evaluate", "register")}
    earlier = [v for v in sorted(versions, key=_vkey) if _vkey(v) < _vkey(version)]
    lineage = [
        {"version": v, "run_id": versions[v], **_stage_total(records, versions[v], "train", rates)} for v in earlier
    ]
    own = sum(s["cost"] for s in stages.values())
    return {
        "version": version,
        "run_id": run_id,
        "stages": stages,
        "cost": own,
        "lineage": lineage,
        "total_to_date": own + sum(x["cost"] for x in lineage),
        "currency": rates.currency,
    }


def _vkey(version: str) -> tuple[int, str]:
    return (int(version), "") if str(version).isdigit() else (1 << 60, str(version))


#: the counters of a serving process when it starts
_PROCESS_START: dict[str, Any] = {"usage": _NO_USAGE, "predictions": 0, "requests": 0}


def serving_costs(files: dict[str, list[dict[str, Any]]], model_name: str, version: str, rates: Any) -> dict[str, Any]:
    """CPU-seconds and money per 1,000 predictions of ``model_name`` ``version``, from the servers'
    own counters, summed over processes and priced at the rate card.

    In each process file, the difference of the cumulative counters between the last line that
    served this version and the line before its first one: the last line of the version before it
    (after a reload), or the process's start, where every counter was zero (its start-up, model
    load and idle time are part of what serving cost; a first line 60 s in would otherwise lose
    every prediction made before it)."""
    predictions = requests = 0
    cpu_s = wall_s = gpu_s = 0.0
    peak = 0
    processes = 0
    for lines in files.values():
        prev: dict[str, Any] | None = None  # the line before the current one
        start: dict[str, Any] | None = None  # the segment's baseline
        last: dict[str, Any] | None = None
        segments = []
        for line in lines:
            mine = line.get("model_name") == model_name and str(line.get("model_version")) == str(version)
            if mine and start is None:
                start = prev if prev is not None else _PROCESS_START
            if mine:
                last = line
            elif start is not None:
                segments.append((start, last))
                start = last = None
            prev = line
        if start is not None:
            segments.append((start, last))
        for a, b in segments:
            ua, ub = Usage.from_dict(a["usage"]), Usage.from_dict(b["usage"])
            predictions += int(b.get("predictions", 0)) - int(a.get("predictions", 0))
            requests += int(b.get("requests", 0)) - int(a.get("requests", 0))
            cpu_s += ub.cpu_s - ua.cpu_s
            wall_s += ub.wall_s - ua.wall_s
            gpu_s += ub.gpu_s - ua.gpu_s
            peak = max(peak, ub.peak_rss_bytes)
        processes += bool(segments)
    usage = Usage(wall_s=wall_s, cpu_user_s=cpu_s, cpu_system_s=0.0, peak_rss_bytes=peak, read_bytes=0,
                  write_bytes=0, gpu_s=gpu_s)  # fmt: skip
    money = price(usage, rates)
    per_k = 1000.0 / predictions if predictions > 0 else None
    return {
        "processes": processes,
        "predictions": predictions,
        "requests": requests,
        "cpu_s": round(cpu_s, 6),
        "wall_s": round(wall_s, 3),
        "cost": money["total"],
        "cpu_s_per_1k": cpu_s * per_k if per_k else None,
        "cost_per_1k": money["total"] * per_k if per_k else None,
        "cpu_cost_per_1k": money["cpu"] * per_k if per_k else None,
        "currency": rates.currency,
    }


# --------------------------------------------------------------------------------------------
# text


def money(value: float | None, currency: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.6f}"
    return f"{text} {currency}".strip()


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """A plain text table: ``columns`` = (key, heading); numbers right-aligned."""
    cells = [[h for _, h in columns]] + [[_cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    numeric = [bool(rows) and all(r.get(k) is None or _is_number(r.get(k)) for r in rows) for k, _ in columns]
    lines = []
    for row in cells:
        padded = (c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric, strict=True))
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) >= 0.001 or v == 0 else f"{v:.2e}"
    return str(v)
