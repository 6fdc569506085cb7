"""Evidently as the face: its HTML and JSON report, rendered on a sample of the window.

Evidently renders plotly widgets for every column and takes 40-100 s on a million rows, so the
report gets ``monitor.report_sample_rows`` rows per side (the verdict is computed on every row by
:mod:`aiinfra.monitoring.engine`). The report uses the methods and thresholds the verdict resolved,
so both speak of the same tests; its scores are the sample's.

This module is the child side of :class:`~aiinfra.monitoring.report_worker.ReportWorker`
(``python -m aiinfra.monitoring.report``); :func:`render` can also be called in-process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiinfra.monitoring import stats, typed_columns
from aiinfra.monitoring.report_worker import sample_reference
from aiinfra.monitoring.typed_columns import as_labels
from aiinfra.runner import setup_environment


def _import_evidently():
    setup_environment()  # DO_NOT_TRACK before Evidently is imported, also when render() runs in-process
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
    usable = [r for r in results if r.get("score") is not None and r.get("role") != "skipped"]
    features = [r for r in usable if r["counted"]]
    extras = [r for r in usable if not r["counted"]]

    ref_table = sample_reference(reference, sample_rows, seed)
    ref_cols, cur_cols = {}, {}
    for r in usable:
        ref_col = ref_table.column(r["reference_column"])
        cur_col = sample_current.column(r["column"])
        how = r.get("compared_as")
        if how is not None:  # typed by the data contract: the same values the verdict tested
            boolean = r.get("feature_type") == "boolean"
            ref_col, cur_col = (
                typed_columns.convert(ref_col, how, boolean),
                typed_columns.convert(cur_col, how, boolean),
            )
        elif r["column"] != r["reference_column"]:  # prediction vs target: compare as labels
            ref_col, cur_col = as_labels(ref_col), as_labels(cur_col)
        ref_cols[r["column"]], cur_cols[r["column"]] = ref_col, cur_col
    ref_df = pa.table(ref_cols).to_pandas()
    cur_df = pa.table(cur_cols).to_pandas()

    # a numerical column with few values gets a categorical test by Evidently's own auto rule
    # (chisquare, z); named explicitly, Evidently refuses that test on a numerical column, so the
    # report declares such a column categorical: the same test on the same values
    def categorical(r: dict) -> bool:
        return r["type"] == "categorical" or stats.NUMERICAL not in stats.ALLOWED.get(r["method"], {stats.NUMERICAL})

    definition = DataDefinition(
        numerical_columns=[r["column"] for r in usable if not categorical(r)],
        categorical_columns=[r["column"] for r in usable if categorical(r)],
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
