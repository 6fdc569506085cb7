"""Training benchmark: ``aiinfra train`` against the plain Lightning script and a hand-written loop.

    .venv/bin/python bench/train_bench.py                 # idle, then with one competing process
    .venv/bin/python bench/train_bench.py --load idle --epochs 3 --rows 200000

The same MLP, the same prepared data (``aiinfra prepare source=synthetic``, about ``--rows``
training rows x 16 features), the same epochs, for:

  (a) ``aiinfra train`` as a subprocess: whole-process wall time, and fit time from
      ``models/train_run.json``;
  (b) the plain Lightning script a user would write (TensorDataset + DataLoader(batch_size=256,
      shuffle=True) + a default Trainer), bench/train_baselines.py;
  (c) a hand-written PyTorch loop slicing whole batches from tensors, at aiinfra's batch size,
      learning rate (scaled with the automatic batch size) and threads, bench/train_baselines.py.

Each runs in its own process, once on an idle machine and once next to one CPU-bound process
(``--load``). The MLflow store is created before the timed runs (a project's first run pays for
the database migrations once). Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: the three ways of training the benchmark compares: key in the results, label in the report
VARIANTS = (("aiinfra", "(a) aiinfra train"), ("lightning", "(b) plain Lightning"), ("loop", "(c) hand loop"))

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
AIINFRA = [str(BIN / "aiinfra")] if (BIN / "aiinfra").exists() else [sys.executable, "-m", "aiinfra"]
BASELINES = str(Path(__file__).resolve().parent / "train_baselines.py")


def _run(cmd: list[str], cwd: Path) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, proc.stdout + proc.stderr


def _result_line(out: str) -> dict:
    line = next(ln for ln in reversed(out.splitlines()) if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def _import_seconds() -> float:
    """The unavoidable part: a fresh interpreter importing torch and lightning."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, lightning"], check=True)
    return time.perf_counter() - t


def run_aiinfra(work: Path, epochs: int, overrides: list[str]) -> dict:
    wall, out = _run(
        [
            *AIINFRA,
            "train",
            "source=synthetic",
            f"trainer.max_epochs={epochs}",
            "trainer.early_stopping.enabled=false",
            *overrides,
        ],
        work,
    )
    summary = json.loads((work / "models" / "train_run.json").read_text())
    fit = float(summary["fit_seconds"])
    rows = int(json.loads((work / "data/prepared/meta.json").read_text())["rows"]["train"])
    return {
        "fit_seconds": fit,
        "samples_per_second": rows * epochs / fit,
        "val_acc": summary["metrics"]["val_acc"],
        "wall_seconds": wall,
        "batch_size": summary.get("batch_size"),
        "threads": summary.get("threads"),
        "lr": summary.get("lr"),
        "timings": summary.get("timings", {}),
    }


def run_baseline(
    work: Path, kind: str, epochs: int, batch_size: int, seed: int, threads: int, lr: float | None = None
) -> dict:
    cmd = [sys.executable, BASELINES, kind, str(work / "data/prepared"), str(epochs), str(batch_size), str(seed)]
    if kind == "loop":
        cmd += [str(threads), str(lr or 3e-3)]
    wall, out = _run(cmd, work)
    res = _result_line(out)
    res["wall_seconds"] = wall
    res["batch_size"] = batch_size
    res["lr"] = float(lr or 3e-3)
    return res


def one_pass(work: Path, args, label: str) -> dict:
    print(f"\n== {label} ==", flush=True)
    res = {"import_seconds": _import_seconds(), "loadavg_before": os.getloadavg()[0]}
    res["aiinfra"] = run_aiinfra(work, args.epochs, args.override)
    a = res["aiinfra"]
    print(f"  (a) aiinfra train     fit {a['fit_seconds']:.2f} s  wall {a['wall_seconds']:.2f} s", flush=True)
    res["lightning"] = run_baseline(work, "lightning", args.epochs, 256, args.seed, 0)
    print(f"  (b) plain Lightning   fit {res['lightning']['fit_seconds']:.2f} s", flush=True)
    res["loop"] = run_baseline(
        work, "loop", args.epochs, int(a["batch_size"] or 256), args.seed, int(a["threads"] or 0), lr=a.get("lr")
    )
    print(f"  (c) hand-written loop fit {res['loop']['fit_seconds']:.2f} s", flush=True)
    return res


def threads_pass(work: Path, args, label: str) -> dict:
    """aiinfra train at each ``--threads`` value (trainer.threads; 0 = torch's default)."""
    print(f"\n== {label}: threads ==", flush=True)
    out = {}
    for n in args.threads:
        r = run_aiinfra(work, args.epochs, [*args.override, f"trainer.threads={n}"])
        print(
            f"  trainer.threads={n}: fit {r['fit_seconds']:.2f} s, {r['samples_per_second']:,.0f} samples/s, "
            f"val_acc {r['val_acc']:.4f}",
            flush=True,
        )
        out[str(n)] = r
    return out


def accuracy_pass(work: Path, args) -> list[str]:
    """Validation accuracy of (a), (b) and (c) over several seeds: one seed's gap is mostly noise."""
    print("\n== accuracy over seeds ==", flush=True)
    acc: dict[str, list[float]] = {"aiinfra": [], "lightning": [], "loop": []}
    for seed in args.accuracy_seeds:
        a = run_aiinfra(work, args.epochs, [*args.override, f"seed={seed}"])
        b = run_baseline(work, "lightning", args.epochs, 256, seed, 0)
        c = run_baseline(
            work, "loop", args.epochs, int(a["batch_size"] or 256), seed, int(a["threads"] or 0), lr=a.get("lr")
        )
        for key, r in (("aiinfra", a), ("lightning", b), ("loop", c)):
            acc[key].append(r["val_acc"])
        print(f"  seed {seed}: (a) {a['val_acc']:.4f}  (b) {b['val_acc']:.4f}  (c) {c['val_acc']:.4f}", flush=True)
    lines = [f"validation accuracy over seeds {','.join(map(str, args.accuracy_seeds))}:"]
    for key, name in VARIANTS:
        v = acc[key]
        lines.append(f"  {name:<22} mean {sum(v) / len(v):.4f}  range {min(v):.4f}-{max(v):.4f}")
    return lines


def report(label: str, res: dict) -> list[str]:
    lines = [
        f"{label}: torch+lightning import in a fresh process {res['import_seconds']:.1f} s; "
        f"1-min load average before the pass {res['loadavg_before']:.2f}",
        f"{'':24}{'fit s':>8}{'samples/s':>12}{'wall s':>8}{'val_acc':>9}{'batch':>7}{'lr':>9}{'threads':>8}",
    ]
    for key, name in VARIANTS:
        r = res[key]
        lines.append(
            f"{name:<24}{r['fit_seconds']:>8.2f}{r['samples_per_second']:>12,.0f}{r['wall_seconds']:>8.1f}"
            f"{r['val_acc']:>9.4f}{r.get('batch_size') or '':>7}{r.get('lr') or 0:>9.2e}"
            f"{r.get('threads') or '':>8}"
        )
    a, b, c = res["aiinfra"], res["lightning"], res["loop"]
    overhead = a["wall_seconds"] - a["fit_seconds"] - res["import_seconds"]
    lines.append(
        f"aiinfra/plain-Lightning throughput {a['samples_per_second'] / b['samples_per_second']:.1f}x; "
        f"hand-loop/aiinfra fit time {c['samples_per_second'] / a['samples_per_second']:.2f}x; "
        f"aiinfra wall - fit - import = {overhead:.1f} s"
    )
    if a.get("timings"):
        lines.append("aiinfra phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in a["timings"].items()))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000, help="training rows (the prepared train split)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--load", choices=["idle", "contended", "both"], default="both")
    ap.add_argument("--override", action="append", default=[], help="extra override for aiinfra train")
    ap.add_argument(
        "--threads",
        type=lambda v: [int(x) for x in v.split(",")],
        default=None,
        help="instead of the comparison: aiinfra train at each trainer.threads value, e.g. 1,2,0",
    )
    ap.add_argument(
        "--accuracy-seeds",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[],
        help="also compare validation accuracy over these seeds (idle), e.g. 1,2,3",
    )
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="aiinfra-bench-"))
    shutil.copytree(REPO / "conf", work / "conf")
    # prepare splits 70/15/15: ask for enough rows that the train split has --rows
    total = math.ceil(args.rows / 0.7)
    _run([*AIINFRA, "prepare", "source=synthetic", f"source.rows={total}", "source.features=16"], work)
    _run(
        [
            sys.executable,
            "-c",
            "import mlflow; mlflow.set_tracking_uri('sqlite:///mlflow.db'); mlflow.MlflowClient().search_experiments()",
        ],
        work,
    )
    print(f"work dir {work}; {os.cpu_count()} CPUs; {args.epochs} epochs", flush=True)

    results: dict[str, dict] = {}
    do_pass = threads_pass if args.threads else one_pass
    if args.load in ("idle", "both"):
        results["idle"] = do_pass(work, args, "idle")
    if args.load in ("contended", "both"):
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(1.0)
            results["contended"] = do_pass(work, args, "one competing CPU-bound process")
        finally:
            hog.kill()
            hog.wait()
    accuracy = accuracy_pass(work, args) if args.accuracy_seeds and not args.threads else []
    print()
    if not args.threads:
        for label, res in results.items():
            print("\n".join(report(label, res)) + "\n")
    if accuracy:
        print("\n".join(accuracy) + "\n")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
