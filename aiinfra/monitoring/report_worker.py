"""The parent's side of Evidently's report process: start it early, hand it the sample, read its answer.

Importing evidently costs ~3.5 s (with the GC paused) and rendering ~0.1 s per column whatever the
sample size. The monitor stage's ``prestart`` (:mod:`aiinfra.stages.monitor`) starts this process
before the config is composed, so the import runs on the other core while the main process reads
the window and tests it, and Evidently's memory and any crash of it stay out of the monitor. The
child (``python -m aiinfra.monitoring.report``) reads one JSON request on stdin (paths of the sample
Parquet files and the resolved tests) and answers one JSON line on stdout.

Standard library only at import time: the monitor stage imports this before the config is composed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from aiinfra.runner import setup_environment


def sample_reference(table: Any, sample_rows: int, seed: int = 0) -> Any:
    """The reference rows Evidently's report shows: ``sample_rows`` of them, drawn by ``seed``
    (the same rows whichever process draws them), or all when there are fewer."""
    # numpy/pyarrow here, not at the top: this module is imported before the config is composed
    import numpy as np
    import pyarrow as pa

    if sample_rows <= 0 or table.num_rows <= sample_rows:
        return table
    idx = np.sort(np.random.default_rng(seed + 1).choice(table.num_rows, sample_rows, replace=False))
    return table.take(pa.array(idx))


class ReportWorker:
    """Evidently in a child process, started before the verdict is computed."""

    _spare: ReportWorker | None = None

    def __init__(self) -> None:
        setup_environment()  # telemetry off in the child too (it inherits os.environ), whoever started us
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiinfra.monitoring.report"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )

    @classmethod
    def take(cls) -> ReportWorker:
        """A warm worker started by :meth:`prewarm` (its import already done), else a new one."""
        spare, cls._spare = cls._spare, None
        if spare is not None and spare.proc.poll() is None:
            return spare
        return cls()

    @classmethod
    def prewarm(cls) -> None:
        """Start the next run's worker now (before the config is composed; in watch mode while we sleep)."""
        if cls._spare is None or cls._spare.proc.poll() is not None:
            cls._spare = cls()

    @classmethod
    def discard_spare(cls) -> None:
        """Stop the prestarted worker, if one is waiting (the run wants no report, or is over)."""
        if cls._spare is not None:
            cls._spare.close()
            cls._spare = None

    def render(self, *, sample_current: Any, reference: Any, timeout_s: float = 600.0, **kwargs: Any) -> dict:
        """Have the child render the report (keyword arguments of :func:`aiinfra.monitoring.report.render`)."""
        import pyarrow.parquet as pq  # only when a report is rendered

        html_path = kwargs.get("html_path")
        folder = Path(html_path).parent if html_path else Path(tempfile.gettempdir())
        with tempfile.TemporaryDirectory(dir=folder, prefix=".report-") as tmp:
            cur_path, ref_path = Path(tmp) / "current.parquet", Path(tmp) / "reference.parquet"
            pq.write_table(sample_current, cur_path)
            # only the sampled rows travel: a 1M-row reference would cost a write, a read and the
            # worker's memory for rows the report never shows
            sampled = sample_reference(reference, int(kwargs.get("sample_rows") or 0), int(kwargs.get("seed") or 0))
            pq.write_table(sampled, ref_path)
            request = {k: (str(v) if isinstance(v, Path) else v) for k, v in kwargs.items()}
            request.update(sample_current=str(cur_path), reference=str(ref_path))
            try:
                out, err = self.proc.communicate(json.dumps(request, default=str), timeout=timeout_s)
            except Exception:
                self.close()
                raise
        lines = [line for line in out.splitlines() if line.startswith("{")]
        answer = json.loads(lines[-1]) if lines else {}
        if self.proc.returncode != 0 or "error" in answer or not lines:
            raise RuntimeError(answer.get("error") or f"report process exited {self.proc.returncode}: {err[-2000:]}")
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
