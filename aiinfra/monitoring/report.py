"""Evidently as the face: its HTML and JSON report, rendered on a sample of the window.

Evidently renders plotly widgets for every column and takes 40-100 s on a million rows, so the
report gets ``monitor.report_sample_rows`` rows per side (the verdict is computed on every row by
:mod:`aiinfra.monitoring.engine`). The report uses the methods and thresholds the verdict resolved,
so both speak of the same tests; its scores are the sample's. Also parses an Evidently snapshot
back into per-column verdicts (for the agreement test and the benchmark).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from aiinfra.monitoring import stats
from aiinfra.monitoring.engine import as_labels


def _import_evidently():
    # No data leaves the user's machine: Evidently's telemetry stays off.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    return DataDefinition, Dataset, Report, ValueDrift, DataDriftPreset


def _import_evidently_without_gc() -> None:
    """:func:`_import_evidently` with the cyclic GC paused (for the report process).

    Evidently's import builds ~540,000 objects (pydantic models, plotly validators); the
    collections it triggers walk all of them again and again and cost about 1 s of the ~4.5 s
    import here. Nothing it builds is garbage, so the collector is paused for the import, and
    what it built is then frozen out of later collections (the render's own garbage is still
    collected).
    """
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        _import_evidently()
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


@contextmanager
def _skip_discarded_plots(columns: list[str]) -> Iterator[None]:
    """Don't draw the per-column plots that ``DataDriftPreset`` throws away.

    The preset runs a ``ValueDrift`` for each column, and each draws its own plotly figures; the
    preset then shows only its drift table and discards those widgets (they are in neither the
    HTML nor the JSON). Drawing them is about a third of the render (~0.05 s a column). Only the
    preset's columns are skipped; a ``ValueDrift`` shown on its own (prediction, target) is drawn.
    If Evidently's internals change, nothing is skipped: the report is the same, only slower.
    ``tests/monitoring/test_report_render.py`` checks that the HTML and JSON are unchanged.
    """
    try:
        from evidently.metrics.column_statistics import ValueDriftCalculation
    except ImportError:  # pragma: no cover - another Evidently layout
        yield
        return
    original = ValueDriftCalculation.__dict__.get("_render")
    if original is None:  # pragma: no cover - another Evidently layout
        yield
        return
    skip = set(columns)

    def _render(self: Any, result: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(getattr(self, "metric", None), "column", None) in skip:
            return []
        return original(self, result, *args, **kwargs)

    ValueDriftCalculation._render = _render
    try:
        yield
    finally:
        ValueDriftCalculation._render = original


def sample_reference(table: Any, sample_rows: int, seed: int = 0) -> Any:
    """The reference rows Evidently's report shows: ``sample_rows`` of them, drawn by ``seed``
    (the same rows whichever process draws them), or all when there are fewer."""
    import numpy as np
    import pyarrow as pa

    if sample_rows <= 0 or table.num_rows <= sample_rows:
        return table
    idx = np.sort(np.random.default_rng(seed + 1).choice(table.num_rows, sample_rows, replace=False))
    return table.take(pa.array(idx))


def render(
    *,
    sample_current: Any,
    reference: Any,
    results: list[dict],
    drift_share: float,
    html_path: Path | None,
    json_path: Path | None,
    sample_rows: int,
    seed: int = 0,
    skip_discarded_plots: bool = True,
) -> dict:
    """Run Evidently on the samples; write its HTML and JSON; return what was written."""
    import pyarrow as pa

    DataDefinition, Dataset, Report, ValueDrift, DataDriftPreset = _import_evidently()
    usable = [r for r in results if r.get("score") is not None]
    features = [r for r in usable if r["counted"]]
    extras = [r for r in usable if not r["counted"]]

    ref_table = sample_reference(reference, sample_rows, seed)
    ref_cols, cur_cols = {}, {}
    for r in usable:
        ref_col = ref_table.column(r["reference_column"])
        cur_col = sample_current.column(r["column"])
        if r["column"] != r["reference_column"]:  # prediction vs target: compare as labels
            ref_col, cur_col = as_labels(ref_col), as_labels(cur_col)
        ref_cols[r["column"]], cur_cols[r["column"]] = ref_col, cur_col
    ref_df = pa.table(ref_cols).to_pandas()
    cur_df = pa.table(cur_cols).to_pandas()
    definition = DataDefinition(
        numerical_columns=[r["column"] for r in usable if r["type"] == "numerical"],
        categorical_columns=[r["column"] for r in usable if r["type"] == "categorical"],
    )
    metrics: list[Any] = []
    if features:
        metrics.append(
            DataDriftPreset(
                columns=[r["column"] for r in features],
                drift_share=drift_share,
                per_column_method={r["column"]: r["method"] for r in features},
                per_column_threshold={r["column"]: r["threshold"] for r in features},
            )
        )
    metrics += [ValueDrift(column=r["column"], method=r["method"], threshold=r["threshold"]) for r in extras]
    with _skip_discarded_plots([r["column"] for r in features] if skip_discarded_plots else []):
        snapshot = Report(metrics, include_tests=True).run(
            Dataset.from_pandas(cur_df, data_definition=definition),
            Dataset.from_pandas(ref_df, data_definition=definition),
        )
    written = {}
    if html_path is not None:
        snapshot.save_html(str(html_path))  # a str path: save_html ignores file objects
        written["html"] = str(html_path)
    if json_path is not None:
        snapshot.save_json(str(json_path))
        written["json"] = str(json_path)
    written["rows_current"] = len(cur_df)
    written["rows_reference"] = len(ref_df)
    return written


def evidently_columns(snapshot: dict) -> dict[str, Any]:
    """Per-column verdicts out of an Evidently snapshot dict (``snapshot.dict()``).

    Returns ``{"columns": {name: {method, score, threshold, drifted}}, "share": float | None,
    "drift_detected": bool | None}``; a column drifted when its "Value Drift" test failed.
    """
    columns: dict[str, dict] = {}
    share = detected = None
    for metric in snapshot.get("metrics", []):
        config = metric.get("config", {})
        kind = str(config.get("type", ""))
        if kind.endswith("ValueDrift"):
            method = str(config.get("method"))
            columns[config["column"]] = {
                "method": stats.DISPLAY_TO_METHOD.get(method, method),
                "score": float(metric["value"]),
                "threshold": config.get("threshold"),
            }
        elif kind.endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    for test in snapshot.get("tests", []):
        name = str(test.get("name", ""))
        if name.startswith("Value Drift for column "):
            col = name[len("Value Drift for column "):]
            if col in columns:
                columns[col]["drifted"] = test.get("status") == "FAIL"
        elif name.startswith("Share of Drifted Columns"):
            detected = test.get("status") == "FAIL"
    return {"columns": columns, "share": share, "drift_detected": detected}


def evidently_direct(reference: Any, current: Any, *, numerical: list[str], categorical: list[str],
                     drift_share: float = 0.5, method: str | None = None,
                     per_column_method: dict | None = None, per_column_threshold: dict | None = None) -> dict:
    """Evidently's own ``DataDriftPreset`` on whole pandas frames (the yardstick for the
    agreement test and the benchmark); returns :func:`evidently_columns` of its snapshot."""
    DataDefinition, Dataset, Report, _, DataDriftPreset = _import_evidently()
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    preset = DataDriftPreset(columns=numerical + categorical, drift_share=drift_share, method=method,
                             per_column_method=per_column_method or None,
                             per_column_threshold=per_column_threshold or None)
    snapshot = Report([preset], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    return evidently_columns(snapshot.dict())


class ReportWorker:
    """Evidently in a child process, started before the verdict is computed.

    Importing evidently costs ~3.5 s (with the GC paused) and rendering ~0.1 s per column
    whatever the sample size; the CLI starts this process before it composes the config, so
    the import runs on the other core while the main process reads the window and tests it,
    and Evidently's memory and any crash of it stay out of the monitor. The child reads one JSON
    request on stdin (paths of the sample Parquet files and the resolved tests) and answers one
    JSON line on stdout.
    """

    def __init__(self) -> None:
        import subprocess
        import sys

        env = dict(os.environ, DO_NOT_TRACK="1", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiinfra.monitoring.report"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )

    _spare: "ReportWorker | None" = None

    @classmethod
    def take(cls) -> "ReportWorker":
        """A warm worker started by :meth:`prewarm` (its import already done), else a new one."""
        spare, cls._spare = cls._spare, None
        if spare is not None and spare.proc.poll() is None:
            return spare
        return cls()

    @classmethod
    def prewarm(cls) -> None:
        """Start the next run's worker now (watch mode: it imports evidently while we sleep)."""
        if cls._spare is None or cls._spare.proc.poll() is not None:
            cls._spare = cls()

    @classmethod
    def discard_spare(cls) -> None:
        if cls._spare is not None:
            cls._spare.close()
            cls._spare = None

    def render(self, *, sample_current: Any, reference: Any, timeout_s: float = 600.0, **kwargs: Any) -> dict:
        import json
        import tempfile

        import pyarrow.parquet as pq

        html_path = kwargs.get("html_path")
        folder = Path(html_path).parent if html_path else Path(tempfile.gettempdir())
        with tempfile.TemporaryDirectory(dir=folder, prefix=".report-") as tmp:
            cur_path, ref_path = Path(tmp) / "current.parquet", Path(tmp) / "reference.parquet"
            pq.write_table(sample_current, cur_path)
            # only the sampled rows travel: a 1M-row reference would cost a write, a read and the
            # worker's memory for rows the report never shows
            pq.write_table(sample_reference(reference, int(kwargs.get("sample_rows") or 0), int(kwargs.get("seed") or 0)),
                           ref_path)
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


def _serve_one_request() -> int:
    """The child side of :class:`ReportWorker` (``python -m aiinfra.monitoring.report``)."""
    import json
    import sys

    import pyarrow.parquet as pq

    _import_evidently_without_gc()  # while the parent computes the verdict
    try:
        request = json.loads(sys.stdin.read())
        written = render(
            sample_current=pq.read_table(request.pop("sample_current")),
            reference=pq.read_table(request.pop("reference")),
            **{k: (Path(v) if k.endswith("_path") and v else v) for k, v in request.items()},
        )
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which keeps its verdict
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(written, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(_serve_one_request())
