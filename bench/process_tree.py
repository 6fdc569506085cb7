"""Run one benchmark contender as its own process and measure it: wall time, peak RSS of the
whole process tree (the process and every descendant, summed, sampled every 50 ms: Ray's raylet
and workers, DuckDB's threads, a pandas script alike), exit status.

A memory cap guards the machine: when the tree's RSS passes ``cap_bytes`` the tree is killed and
the run is recorded as ``killed at cap`` (the sampler's view, not the kernel's OOM killer, so a
contender that would take the machine down cannot). Used by bench/prepare_scale_bench.py and
bench/monitor_scale_bench.py.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SAMPLE_S = 0.05


@dataclass
class Measured:
    wall_s: float
    peak_rss: int  # bytes
    returncode: int
    status: str  # "ok", "failed (rc N)", "killed at cap (N GiB)"
    stderr_tail: str
    stdout_tail: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def peak_mib(self) -> float:
        return self.peak_rss / 2**20


def _tree_rss(root: psutil.Process) -> tuple[int, list[psutil.Process]]:
    procs = [root]
    with contextlib.suppress(psutil.Error):
        procs += root.children(recursive=True)
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):  # exited between listing and reading
            total += p.memory_info().rss
    return total, procs


def run(cmd: list[str], cwd: Path, env: dict, cap_bytes: int, log_path: Path | None = None) -> Measured:
    """Run ``cmd`` to its end (or to the cap); stdout and stderr go to ``log_path`` when given."""
    out = open(log_path, "w") if log_path else subprocess.PIPE  # noqa: SIM115 - closed below
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT if log_path else subprocess.PIPE, text=True
    )
    peak = 0
    capped = False
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, capped
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not done.is_set():
            rss, procs = _tree_rss(root)
            peak = max(peak, rss)
            if rss > cap_bytes and not capped:
                capped = True
                for p in reversed(procs):  # children first, then the root
                    with contextlib.suppress(psutil.Error):
                        p.kill()
            time.sleep(SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    if log_path:
        out.close()
        text = Path(log_path).read_text(errors="replace")
        stdout, stderr = text, text
    if capped:
        status = f"killed at cap ({cap_bytes / 2**30:.0f} GiB)"
    elif proc.returncode < 0:
        status = f"killed by signal {-proc.returncode}"  # e.g. the kernel's OOM killer (9)
    elif proc.returncode:
        status = f"failed (rc {proc.returncode})"
    else:
        status = "ok"
    return Measured(wall, peak, proc.returncode, status, (stderr or "")[-3000:], (stdout or "")[-3000:])
