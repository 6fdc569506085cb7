"""Benchmark: ``aiinfra monitor`` on a 10M-row prediction log, local and on an S3 server.

The reference: ``aiinfra prepare`` on the mixed-type table of bench/scale_data.py (1M rows,
``features.drop=[part]``: the hive partition column is no feature a server would log). The log
(bench/scale_data.py ``prediction_log``): the same 18 feature columns typed as the server writes
them for a model with a data contract (double, bool, string, nulls), with request_id, timestamp,
model_name, model_version, prediction, score, over 24 hourly partitions of 100,000-row parts;
the second 12 hours drift (f0, f3 shifted, c0's shares reversed). Generated once under ``--data``.

Each run is ``aiinfra monitor`` in its own process (bench/process_tree.py: wall, peak RSS of the
tree, the Evidently report process included):

* ``local``: ``server.log_dir=<local log>``, the default config (verdict on every row, Evidently's
  report on a 20,000-row sample);
* ``local_verdict``: the same with ``monitor.report=false`` (the verdict alone);
* ``s3``: the log uploaded to a moto S3 server started in this process (``server.log_dir=s3://...``).

Results go to ``bench/results/monitor_scale.md``. Usage::

    .venv/bin/python bench/monitor_scale_bench.py                 # 10M rows
    .venv/bin/python bench/monitor_scale_bench.py --rows 1000000 --runs local,s3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "bench"), str(REPO)]

import prepare_scale_bench as psb  # noqa: E402 - bench/ is on the path above
import process_tree  # noqa: E402
import scale_data  # noqa: E402

RUNS = ("local_verdict", "local", "s3")
REFERENCE_ROWS = 1_000_000


def reference_project(data: Path, cap: int, logs: Path) -> Path:
    """A project whose data/prepared is ``aiinfra prepare``'s output on the 1M-row table (once)."""
    project = data / "runs" / "monitor-project"
    if (project / "data" / "prepared" / "contract.json").is_file():
        return project
    table = scale_data.table(data / f"table-{REFERENCE_ROWS}", REFERENCE_ROWS)
    psb.new_project(project)
    cmd = psb.prepare_cmd(str(table), "memory", "features.drop=[part]")
    m = process_tree.run(cmd, project, psb.env_for(project), cap, logs / "monitor-prepare.log")
    if not m.ok:
        raise SystemExit(f"aiinfra prepare for the reference failed ({m.status}):\n{m.stderr_tail}")
    return project


def monitor_cmd(log_dir: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "aiinfra",
        "monitor",
        f"server.log_dir={log_dir}",
        "monitor.fail_on_drift=false",
        *extra,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--data", type=Path, default=Path("/tmp/aiinfra-scale"))
    parser.add_argument("--cap-gb", type=float, default=12.0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "monitor_scale.md")
    args = parser.parse_args()
    runs = [r for r in args.runs.split(",") if r]
    cap = int(min(args.cap_gb * psb.GIB, psutil.virtual_memory().available - 3 * psb.GIB))
    logs = args.data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    header = (
        f"# monitor at scale (bench/monitor_scale_bench.py)\n\nmachine: {psb.machine()}; "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; commit {psb.git_commit()}; "
        f"memory cap {cap / psb.GIB:.1f} GiB; log: {args.rows:,} rows, 24 hourly partitions, "
        f"reference: aiinfra prepare on {REFERENCE_ROWS:,} rows"
    )
    print(header, flush=True)
    project = reference_project(args.data, cap, logs)
    local_log = scale_data.prediction_log(args.data / f"predlog-{args.rows}", args.rows)
    size = sum(f.stat().st_size for f in local_log.rglob("*.parquet"))
    results = []
    s3 = None
    try:
        for name in runs:
            extra, env = [], psb.env_for(project)
            log_dir = str(local_log)
            if name == "local_verdict":
                extra = ["monitor.report=false", "monitor.report_dir=reports/verdict-only"]
            elif name == "s3":
                s3 = psb.MotoS3()
                log_dir = s3.upload(local_log, "scale-logs", "predictions")
                extra = [f"storage.endpoint_url={s3.endpoint}", "monitor.report_dir=reports/s3"]
                env.update(s3.env)
            print(f"  {name} ...", flush=True)
            m = process_tree.run(monitor_cmd(log_dir, *extra), project, env, cap, logs / f"monitor-{name}.log")
            row = {
                "run": name,
                "status": m.status,
                "wall_s": round(m.wall_s, 2),
                "rows_per_s": round(args.rows / m.wall_s) if m.ok else None,
                "peak_rss_mib": round(m.peak_mib),
                "load1": round(os.getloadavg()[0], 1),  # the machine is shared
            }
            report_dir = project / (
                "reports/verdict-only" if name == "local_verdict" else "reports/s3" if name == "s3" else "reports/drift"
            )
            verdict = report_dir / "verdict.json"
            if m.ok and verdict.is_file():
                v = json.loads(verdict.read_text())
                row["rows_seen"] = v["rows"]["current"]
                row["drift"] = f"{v['drifted_columns']} columns drifted, share {v['drift_share']:.2f}"
            else:
                row["error_tail"] = m.stderr_tail[-800:]
            print(f"    {row['status']}: {row['wall_s']} s, peak {row['peak_rss_mib']} MiB", flush=True)
            results.append(row)
            if s3 is not None:
                s3.stop()
                s3 = None
    finally:
        if s3 is not None:
            s3.stop()
    lines = [header, "", f"log size on disk: {size / 2**20:,.0f} MiB", ""]
    lines.append("| run | status | wall s | rows/s | peak RSS MiB | rows tested | verdict | load1 |")
    lines.append("|---|---|---:|---:|---:|---:|---|---:|")
    for r in results:
        rate = f"{r['rows_per_s']:,}" if r["rows_per_s"] else "-"
        drift = r.get("drift", "-")
        seen = f"{r['rows_seen']:,}" if r.get("rows_seen") else "-"
        lines.append(
            f"| {r['run']} | {r['status']} | {r['wall_s']:.1f} | {rate} | {r['peak_rss_mib']:,} | {seen} "
            f"| {drift} | {r.get('load1', '-')} |"
        )
    failed = [r for r in results if r["status"] != "ok"]
    for r in failed:
        tail = r.get("error_tail", "").strip().splitlines()[-3:]
        lines += ["", f"{r['run']} failed: " + " / ".join(tail)]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    (args.data / "monitor_results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
