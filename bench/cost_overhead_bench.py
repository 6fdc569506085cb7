"""What recording a stage's cost costs, as a share of the stage's wall time (target: under 1 %).

Measures, in this process:
  * one reading and pricing: ``ResourceMeter.usage()`` + ``price()`` (what train and evaluate do
    once at the end, and the budget check does every check);
  * one budget check: ``BudgetStop.on_train_batch_end`` with a limit it never reaches;
then runs a real ``aiinfra train`` (in a temporary project, with a budget that is never reached)
and takes from its ``train_run.json`` the stage's wall time, the ``record_usage`` phase (the
reading, the pricing and the one MLflow call that carries them, with fit_seconds) and the number
of batches, to put the two figures beside the stage:

    overhead = record_usage phase + checks x one check      (checks <= batches: an upper bound)

    .venv/bin/python bench/cost_overhead_bench.py [--rows 20000] [--epochs 10]

Writes bench/results/cost_overhead.txt.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aiinfra.governance.resources import ResourceMeter, price  # noqa: E402
from aiinfra.governance.schema import RateCard, StageBudget  # noqa: E402


def per_call(fn, n: int) -> float:
    """Seconds per call of ``fn`` (best of 5 rounds of ``n``)."""
    best = math.inf
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best


def micro() -> dict[str, float]:
    from aiinfra.training.budget import BudgetStop

    rates = RateCard()
    meter = ResourceMeter()
    record = per_call(lambda: price(meter.usage(), rates), 5000)
    budget = BudgetStop(StageBudget(max_cost=1e9, max_cpu_hours=1e9), rates, meter)
    trainer = SimpleNamespace(world_size=1, current_epoch=0, should_stop=False)
    check = per_call(lambda: budget.on_train_batch_end(trainer, None, None, None, 0), 5000)
    return {"record_s": record, "check_s": check}


def train_run(rows: int, epochs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="cost-bench-") as tmp:
        root = Path(tmp)
        shutil.copytree(REPO / "conf", root / "conf")
        aiinfra = [sys.executable, "-m", "aiinfra"]
        common = ["source=synthetic", f"source.rows={rows}"]
        subprocess.run([*aiinfra, "prepare", *common], cwd=root, check=True, capture_output=True)
        t = time.perf_counter()
        subprocess.run(
            [
                *aiinfra,
                "train",
                *common,
                f"trainer.max_epochs={epochs}",
                "trainer.early_stopping.enabled=false",
                "budget.max_cpu_hours=1000",  # active, never reached: every check runs in full
            ],
            cwd=root,
            check=True,
            capture_output=True,
        )
        process_s = time.perf_counter() - t
        summary = json.loads((root / "models" / "train_run.json").read_text())
        train_rows = json.loads((root / "data" / "prepared" / "meta.json").read_text())["rows"]["train"]
    summary["process_s"] = process_s
    summary["train_rows"] = train_rows
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--epochs", type=int, default=10)
    args = p.parse_args()
    m = micro()
    s = train_run(args.rows, args.epochs)
    wall = s["resources"]["wall_s"]
    batches = math.ceil(s["train_rows"] / s["batch_size"]) * s["epochs"]
    steps = math.ceil(math.ceil(s["train_rows"] / s["batch_size"]) / s["steps_per_call"]) * s["epochs"]
    checks = steps / max(1, 16 // s["steps_per_call"])  # train.py checks every 16 batches' worth
    record_phase = s["timings"]["record_usage"]
    budget_total = batches * m["check_s"]  # as if every batch were checked
    share = (record_phase + budget_total) / wall
    lines = [
        "cost-recording overhead (bench/cost_overhead_bench.py)",
        f"machine: {sys.platform}, python {sys.version.split()[0]}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"one reading + pricing (ResourceMeter.usage + price): {m['record_s'] * 1e6:.1f} us",
        f"one budget check (BudgetStop.on_train_batch_end, limit not reached): {m['check_s'] * 1e6:.1f} us",
        "",
        f"aiinfra train: source=synthetic rows={args.rows} epochs={s['epochs']} batch_size={s['batch_size']} "
        f"steps_per_call={s['steps_per_call']}",
        f"  stage wall time (ResourceMeter): {wall:.2f} s (process {s['process_s']:.2f} s), "
        f"fit {s['fit_seconds']:.2f} s, {s['resources']['cpu_s']:.2f} CPU-s",
        f"  record_usage phase (reading, pricing, the one MLflow call with fit_seconds): {record_phase * 1000:.1f} ms",
        f"  budget checks: {checks:.0f} made ({steps} Lightning steps); upper bound at one per batch "
        f"({batches}): {budget_total * 1000:.2f} ms",
        f"  budget checks made, as a share of fit: {checks * m['check_s'] / s['fit_seconds'] * 100:.3f} %",
        f"  overhead: {(record_phase + budget_total) * 1000:.1f} ms = {share * 100:.3f} % of the stage's wall time "
        f"(target < 1 %: {'met' if share < 0.01 else 'NOT met'})",
    ]
    text = "\n".join(lines)
    print(text)
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "cost_overhead.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
