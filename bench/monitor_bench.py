"""Benchmark: `aiinfra monitor` against Evidently's DataDriftPreset run directly, same data.

For each size and drift scenario this writes a 10,000-row reference and a prediction log in the
server's layout (16 feature columns, 24 hourly partitions), then runs, each in its own process:

* ``aiinfra monitor`` (the CLI, default config: verdict on every row, Evidently report on a
  20,000-row sample), and again with ``monitor.report=false`` (the verdict alone), and
* Evidently directly: read the same log into pandas, ``Report([DataDriftPreset()])`` with its
  automatic methods on every row, ``save_html``.

It prints wall time and peak memory (RSS of the process tree, sampled every 20 ms) of both,
their ratios, and whether the per-column verdicts (method and drifted) and the dataset verdict
agree, and the 1-minute load average after each row (the machine may be shared). Usage::

    .venv/bin/python bench/monitor_bench.py                      # 100k and 1M rows, 6 scenarios
    .venv/bin/python bench/monitor_bench.py --rows 100000 --scenarios no_drift mean_shift

Evidently takes minutes per scenario at 1M rows: the full run takes about half an hour here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests" / "monitoring"  # the drift scenarios and Evidently's yardstick live with the tests
sys.path[:0] = [str(REPO), str(TESTS)]

import drift_scenarios as scenarios  # noqa: E402 - found through the path set above
from aiinfra.runner import setup_environment  # noqa: E402

setup_environment()  # DO_NOT_TRACK for every process the benchmark starts (they inherit it)

EVIDENTLY_DIRECT = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[4])  # tests/monitoring: the yardstick shared with the agreement test
from aiinfra.runner import setup_environment
setup_environment()  # DO_NOT_TRACK before Evidently is imported
import pyarrow.dataset as ds, pyarrow.parquet as pq
from evidently import Report, Dataset, DataDefinition
from evidently.presets import DataDriftPreset
from evidently_yardstick import evidently_columns
prepared, logs, out = sys.argv[1], sys.argv[2], sys.argv[3]
meta = json.load(open(os.path.join(prepared, "meta.json")))
features = meta["features"]
ref = pq.read_table(os.path.join(prepared, "reference.parquet"), columns=features).to_pandas()
cur = ds.dataset(logs, format="parquet", partitioning="hive").to_table(columns=features).to_pandas()
definition = DataDefinition(numerical_columns=features)
snap = Report([DataDriftPreset(columns=features)], include_tests=True).run(
    Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition))
snap.save_html(os.path.join(out, "evidently.html"))
json.dump(evidently_columns(snap.dict()), open(os.path.join(out, "evidently_verdict.json"), "w"))
"""


def measure(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float, int, str]:
    """(wall seconds, peak RSS MiB of the process tree, exit status, stderr tail)."""
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not done.is_set():
            try:
                rss = root.memory_info().rss + sum(
                    c.memory_info().rss for c in root.children(recursive=True) if c.is_running()
                )
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.02)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    done.set()
    t.join()
    return wall, peak / 2**20, proc.returncode, (err or "")[-3000:]


def one(rows: int, scenario: str, work: Path, skip_evidently: bool, reference_rows: int = 10_000) -> dict:
    project = work / f"{scenario}-{rows}"
    shutil.rmtree(project, ignore_errors=True)
    (project).mkdir(parents=True)
    shutil.copytree(REPO / "conf", project / "conf")
    scenarios.write_reference(
        project / "data" / "prepared", scenarios.make(scenario, reference_rows, seed=1, reference=True)
    )
    scenarios.write_prediction_log(
        project / "logs" / "predictions",
        scenarios.make(scenario, rows, seed=2),
        dt.datetime(2026, 11, 27, 0, tzinfo=dt.UTC),
        hours=24,
        rows_per_file=50_000,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIINFRA_", "MLFLOW_"))}
    env.update(AIINFRA_PROJECT_DIR=str(project), PYTHONPATH=str(REPO))  # DO_NOT_TRACK: setup_environment()
    ours_wall, ours_mem, code, err = measure(
        [sys.executable, "-m", "aiinfra", "monitor", "monitor.fail_on_drift=false"], project, env
    )
    if code != 0:
        raise SystemExit(f"aiinfra monitor failed ({code}):\n{err}")
    verdict = json.loads((project / "reports" / "drift" / "verdict.json").read_text())
    # the verdict alone (no Evidently report): what a watch loop or an alert-only run costs
    only_wall, only_mem, code, err = measure(
        [
            sys.executable,
            "-m",
            "aiinfra",
            "monitor",
            "monitor.fail_on_drift=false",
            "monitor.report=false",
            "monitor.report_dir=reports/verdict-only",
        ],
        project,
        env,
    )
    if code != 0:
        raise SystemExit(f"aiinfra monitor monitor.report=false failed ({code}):\n{err}")
    row = {
        "rows": rows,
        "reference_rows": reference_rows,
        "scenario": scenario,
        "ours_s": ours_wall,
        "ours_mib": ours_mem,
        "verdict_only_s": only_wall,
        "verdict_only_mib": only_mem,
        "ours_share": verdict["drift_share"],
        "ours_drift": verdict["drift_detected"],
        "ours_report_error": verdict.get("report_error"),
    }
    if skip_evidently:
        return row
    ev_wall, ev_mem, code, err = measure(
        [
            sys.executable,
            "-c",
            EVIDENTLY_DIRECT,
            str(project / "data" / "prepared"),
            str(project / "logs" / "predictions"),
            str(project),
            str(TESTS),
        ],
        project,
        env,
    )
    if code != 0:
        raise SystemExit(f"Evidently directly failed ({code}):\n{err}")
    theirs = json.loads((project / "evidently_verdict.json").read_text())
    agree = sum(
        1
        for name, ev in theirs["columns"].items()
        if verdict["columns"][name]["method"] == ev["method"] and verdict["columns"][name]["drifted"] == ev["drifted"]
    )
    row.update(
        ev_s=ev_wall,
        ev_mib=ev_mem,
        ev_share=theirs["share"],
        ev_drift=theirs["drift_detected"],
        columns_agree=agree,
        columns=len(theirs["columns"]),
        dataset_agree=theirs["drift_detected"] == verdict["drift_detected"],
    )
    shutil.rmtree(project, ignore_errors=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--scenarios", nargs="+", default=list(scenarios.SCENARIOS), choices=scenarios.SCENARIOS)
    parser.add_argument(
        "--reference-rows",
        type=int,
        default=10_000,
        help="rows of the training reference (aiinfra keeps a 10,000-row sample by default; "
        "a user running Evidently by hand often passes the whole training set)",
    )
    parser.add_argument("--skip-evidently", action="store_true", help="time aiinfra monitor only")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()

    import platform

    import psutil

    print(
        f"# {platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}"
    )
    rows_out = []
    header = (
        f"{'rows':>9} {'scenario':<15} {'aiinfra s':>9} {'MiB':>6} {'verdict-only s':>14} {'MiB':>6} "
        f"{'Evidently s':>11} {'MiB':>6} "
        f"{'speedup':>7} {'mem x':>6} {'columns agree':>13} {'dataset':>8} {'load':>5}"
    )
    print(f"# reference: {args.reference_rows:,} rows", flush=True)
    print(header, flush=True)
    with tempfile.TemporaryDirectory(prefix="aiinfra-monitor-bench-") as tmp:
        for rows in args.rows:
            for scenario in args.scenarios:
                r = one(rows, scenario, Path(tmp), args.skip_evidently, args.reference_rows)
                rows_out.append(r)
                if args.skip_evidently:
                    print(
                        f"{rows:>9} {scenario:<15} {r['ours_s']:>9.1f} {r['ours_mib']:>6.0f} "
                        f"{r['verdict_only_s']:>14.1f} {r['verdict_only_mib']:>6.0f} (load {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
                    continue
                print(
                    f"{rows:>9} {scenario:<15} {r['ours_s']:>9.1f} {r['ours_mib']:>6.0f} "
                    f"{r['verdict_only_s']:>14.1f} {r['verdict_only_mib']:>6.0f} {r['ev_s']:>11.1f} "
                    f"{r['ev_mib']:>6.0f} {r['ev_s'] / r['ours_s']:>6.1f}x {r['ev_mib'] / r['ours_mib']:>5.1f}x "
                    f"{r['columns_agree']:>6}/{r['columns']:<6} {'same' if r['dataset_agree'] else 'DIFFERS':>8} "
                    f"{os.getloadavg()[0]:>5.1f}",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(rows_out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
