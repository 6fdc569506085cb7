"""``prepare.engine=stream`` (and the orchestration ``ray`` shares): prepare data larger than memory.

1. The input files: ``source.path`` of a csv/parquet source (one file, or every ``*.parquet`` /
   ``*.csv`` under a directory or prefix, sorted; hive partition folders are walked, their keys
   are not columns), or another source's frame as one in-memory file.
2. Pass 1, per file (:func:`aiinfra.data.stream_file.prepare_file`): split by hash, write the
   parts, count the target, draw the train sample.
3. Types and the task: inferred (the memory engine's rules) on the first :data:`INFER_ROWS` rows
   of the train sample (those with the smallest sample hash: uniform too; the rules look at
   shares, which a smaller sample estimates as well, at a quarter of the time), the task on the
   whole target's values. Medians and the reference rows come from the whole sample.
   Each file's statistics per column (exact, as stream_stats gathers them) come back with it.
   Results are merged as they arrive (in input order), so at most two files' samples and
   statistics are alive: memory does not grow with the number of files.
4. Pass 2, per written part (:func:`aiinfra.data.stream_stats.part_stats`), only for columns whose
   inferred type is not the one their stored type gave pass 1 (a date or number written as a
   string, an override): their exact statistics. The contract and the preprocessing come from the
   train rows' statistics, the profile from every row's.
5. ``reference.parquet`` (the ``reference.rows`` sampled train rows with the smallest hash),
   ``contract.json``, ``preprocess.json``, ``profile.json``, and ``meta.json`` last.

Nothing half-written looks complete: a local prepared directory is built beside the old one and
swapped in at the end; on an object store the old ``meta.json`` and parts are deleted first and
``meta.json`` is written last, and a failed run deletes what it wrote.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aiinfra.data.prepared import META, PARTITIONED, SPLITS, lineage_config, write_json
from aiinfra.errors import DataValidationError
from aiinfra.storage import urls

log = logging.getLogger(__name__)

FILE_SOURCES = {"csv": "csv", "parquet": "parquet"}
#: train-sample rows the column types are inferred on (prepare.sample_rows, if smaller)
INFER_ROWS = 50_000
#: files prepared at once by the stream engine (threads; each holds one file's batches and sample)
LOCAL_WORKERS = max(1, min(4, os.cpu_count() or 1))
#: a run's own temporary or old directory left this long (a killed run) is deleted by the next run
STALE_S = 3600
#: what a prepared directory of either layout holds (deleted before a new one is written there)
PREPARED_NAMES = (
    *(f"{s}.parquet" for s in SPLITS),
    *SPLITS,
    "reference.parquet",
    "contract.json",
    "preprocess.json",
)


def input_files(cfg: Any) -> tuple[str, list]:
    """(kind, the input files in order) for this source."""
    from aiinfra.data.stream_file import InputFile

    kind = FILE_SOURCES.get(str(cfg.source.type))
    path = getattr(cfg.source, "path", None)
    if kind is None or path is None:
        import pyarrow as pa

        from aiinfra.plugins.manager import get_plugins

        frame = get_plugins().registry.get("source", cfg.source.type).load()(cfg.source).read()
        log.info("stream: source '%s' is read into memory (one file of %d rows)", cfg.source.type, len(frame))
        table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
        return "memory", [InputFile(str(cfg.source.type), str(cfg.source.type), table)]
    # absolute: Ray's tasks run in other working directories
    path = str(path) if urls.is_remote(path) else str(urls.local_path(path).resolve())
    if not urls.exists(path):
        raise DataValidationError(f"source file '{urls.redact(path)}' does not exist.", hint="set source.path=...")
    if not urls.isdir(path):
        return kind, [InputFile(path, file_name(path))]
    base = path.rstrip("/") + "/"
    every = urls.glob(path, f"**/*.{kind}")
    relative = [(p, p[len(base) :] if p.startswith(base) else os.path.relpath(p, path)) for p in every]
    # any folder or file named . or _ is no data: Spark's _temporary, _SUCCESS, our own .x.tmp-*
    found = [(p, n) for p, n in relative if not any(part.startswith((".", "_")) for part in n.split("/"))]
    if not found:
        raise DataValidationError(
            f"source.path '{urls.redact(path)}' is a directory without *.{kind} files.",
            hint=f"point source.path at a {kind} file or a directory of them",
        )
    return kind, [InputFile(p, n) for p, n in found]


def file_name(path: str) -> str:
    """The name a single input file's rows are hashed by: the last part of its path, without a
    URL's query (a re-signed presigned URL is the same file: its rows must not move)."""
    from urllib.parse import urlsplit

    inner = urlsplit(path).path if urls.is_remote(path) else path
    return os.path.basename(inner.rstrip("/"))


def file_plan(cfg: Any, kind: str, first: Any, out: str):
    """The plan every file's work shares: columns and schema from the first file."""
    import pyarrow as pa

    from aiinfra.data.stream_file import FilePlan, SampleBound, csv_schema, open_batches
    from aiinfra.data.validation import validate_frame

    schema, batches = open_batches(first, kind, min(cfg.prepare.batch_rows, 4096), None)
    if kind == "csv":  # the first block's types, widened and declared, for every file (this one too)
        schema, batches = open_batches(
            first, kind, min(cfg.prepare.batch_rows, 4096), None, csv_schema(schema, cfg.source)
        )
    head = next(iter(batches), None)  # the declared columns and types, checked as the memory engine does
    frame = (pa.Table.from_batches([head]) if head is not None else schema.empty_table()).to_pandas()
    features = validate_frame(frame, cfg.source)
    columns = (*features, cfg.source.target)
    if cfg.split.key is not None and cfg.split.key not in columns:
        raise DataValidationError(
            f"split.key names column '{cfg.split.key}', which the data does not have.",
            hint=f"the data has: {', '.join(schema.names)}",
        )
    return FilePlan(
        out=out,
        kind=kind,
        target=cfg.source.target,
        columns=columns,
        schema=pa.schema([schema.field(c) for c in columns]),
        seed=int(cfg.seed),
        val=float(cfg.split.val),
        test=float(cfg.split.test),
        key=cfg.split.key,
        batch_rows=int(cfg.prepare.batch_rows),
        part_rows=int(cfg.prepare.part_rows),
        sample_rows=int(cfg.prepare.sample_rows),
        bound=SampleBound(),
    )


def local_map(fn: Callable, items: list, workers: int | None = None) -> Iterator:
    """The results one by one, in input order, from ``workers`` threads (Arrow's reading,
    compute and Parquet writing release the GIL: two files at once use two cores); at most
    ``workers`` results are made ahead of the one the caller merges, so memory stays flat."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    workers = workers or LOCAL_WORKERS
    if workers <= 1 or len(items) <= 1:
        yield from (fn(*item) for item in items)
        return
    pending = iter(items)
    with ThreadPoolExecutor(workers, thread_name_prefix="aiinfra-prepare") as pool:
        running = deque(pool.submit(fn, *item) for _, item in zip(range(workers), pending, strict=False))
        try:
            while running:
                result = running.popleft().result()
                following = next(pending, None)
                if following is not None:
                    running.append(pool.submit(fn, *following))
                yield result
                del result
        finally:
            for future in running:
                future.cancel()


def _workdir(out: str) -> str:
    """Where this run writes: beside a local prepared dir (swapped in at the end), or the URL."""
    if urls.is_remote(out):
        urls.remove(urls.join(out, META))  # first: what is left until the end never looks complete
        for name in PREPARED_NAMES:
            urls.remove(urls.join(out, name), recursive=True)
        return out
    local = urls.local_path(out).resolve()
    local.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale(local)
    return str(local.parent / f".{local.name}.tmp-{uuid.uuid4().hex[:8]}")


def _sweep_stale(local: Path) -> None:
    """Delete what a killed run left beside ``local`` (``.<name>.tmp-*``, ``.<name>.old-*``) once
    it is older than :data:`STALE_S`: a younger one may be a run still writing."""
    import time

    now = time.time()
    for left in [*local.parent.glob(f".{local.name}.tmp-*"), *local.parent.glob(f".{local.name}.old-*")]:
        try:
            if now - left.stat().st_mtime > STALE_S:
                log.info("deleting %s, left by an earlier prepare", left)
                shutil.rmtree(left, ignore_errors=True)
        except OSError:  # another run swept or renamed it meanwhile
            continue


def _finish(work: str, out: str) -> None:
    """Swap the finished local directory in. Two runs finishing at once: the last one wins,
    neither fails, and nothing of either is left beside it."""
    if work == out:
        return
    local = urls.local_path(out)
    olds = []
    for _ in range(20):
        old = local.parent / f".{local.name}.old-{uuid.uuid4().hex[:8]}"
        try:
            local.rename(old)
            olds.append(old)
        except FileNotFoundError:
            pass
        try:
            Path(work).rename(local)
            break
        except OSError:  # another run swapped its directory in between: move that aside too
            continue
    else:
        raise DataValidationError(
            f"could not move the prepared data into {out}: other runs kept writing there.",
            hint="run one `aiinfra prepare` at a time per paths.prepared",
        )
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)


def _discard(work: str, out: str) -> None:
    if work != out:
        shutil.rmtree(work, ignore_errors=True)
        return
    for name in (*PREPARED_NAMES, "profile.json", META):
        try:
            urls.remove(urls.join(out, name), recursive=True)
        except Exception:  # noqa: BLE001 - cleaning up after the real error, which is raised
            log.warning("could not delete %s after the failed prepare", urls.redact(urls.join(out, name)))


def run_streaming(cfg: Any, show: Callable, mapper: Callable | None = None) -> dict[str, Any]:
    """The streaming prepare; ``show(contract, type_table)`` prints the type table;
    ``mapper(fn, [args, ...]) -> iterator of results, in order`` runs the per-file and per-part work (a local loop,
    or Ray: :mod:`aiinfra.data.ray_prepare`)."""
    if mapper is None:
        if str(cfg.prepare.engine) == "ray":
            from aiinfra.data.ray_prepare import ray_mapper

            with ray_mapper(cfg) as mapped:
                return _run(cfg, show, mapped)
        mapper = local_map
    return _run(cfg, show, mapper)


def _run(cfg: Any, show: Callable, mapper: Callable) -> dict[str, Any]:
    import dataclasses

    kind, files = input_files(cfg)
    log.info("stream prepare: %d %s file(s), engine %s", len(files), kind, cfg.prepare.engine)
    _warn_unused_feedback(cfg)
    out = str(cfg.paths.prepared)
    # every check of the input first: on an object store _workdir deletes the previous data
    plan = file_plan(cfg, kind, files[0], out)
    work = _workdir(out)
    try:
        result = _prepare(cfg, files, dataclasses.replace(plan, out=work), out, show, mapper)
        _finish(work, out)
    except BaseException:
        _discard(work, out)
        raise
    return result


def _warn_unused_feedback(cfg: Any) -> None:
    """Labelled windows the retrain policy exported are added by the memory engine only: say so,
    rather than retrain silently without them."""
    try:
        windows = urls.glob(cfg.paths.feedback, "*.parquet") if urls.exists(cfg.paths.feedback) else []
    except Exception:  # noqa: BLE001 - only a warning: an unreadable inbox is the memory engine's error
        windows = []
    if windows:
        log.warning(
            "%d labelled feedback window(s) in %s are not added by prepare.engine=%s (the memory engine "
            "adds them): append them to source.path, or prepare with prepare.engine=memory",
            len(windows),
            urls.redact(cfg.paths.feedback),
            cfg.prepare.engine,
        )


def _prepare(cfg: Any, files: list, plan: Any, out: str, show: Callable, mapper: Callable) -> dict:
    import pyarrow as pa

    from aiinfra.data.contract import CONTRACT, PREPROCESS
    from aiinfra.data.features import infer_contract, infer_task, type_table
    from aiinfra.data.stream_file import H2, FilePartial, bottom_k, dataset_hash, prepare_file
    from aiinfra.data.stream_stats import (
        contract_from_stats,
        merge_stats,
        needs_pass2,
        part_stats,
        stored_kinds,
        transform_from_stats,
    )
    from aiinfra.governance import quality

    work = plan.out
    urls.makedirs(work)
    total = FilePartial()
    for partial in mapper(prepare_file, [(f, i, plan) for i, f in enumerate(files)]):
        total.merge(partial, plan.sample_rows)
        del partial  # its sample and statistics are in the total now
        if total.sample_limit is not None:
            plan.bound.lower(total.sample_limit)
    if total.dropped_target:
        log.warning("dropped %d rows without a value in the target '%s'", total.dropped_target, plan.target)
    rows = sum(total.rows.values())
    if rows < 20 or not total.rows["train"]:
        raise DataValidationError(f"the source has only {rows} rows; at least 20 are needed to split.")
    sample_table = bottom_k([total.sample], plan.sample_rows)  # sorted by H2, once
    sample = sample_table.drop_columns([H2]).to_pandas()
    # the task on the whole target's distinct values (every class known), the types on the sample
    values = pa.array(list(total.target_counts), type=plan.schema.field(plan.target).type).to_pandas()
    values.name = plan.target
    decision = infer_task(values, cfg.features)
    log.info("%s", decision.rule)
    typed = sample.iloc[:INFER_ROWS]
    sampled = infer_contract(typed, cfg.source, cfg.features, typed.index)
    types = {c.name: str(c.type) for c in sampled.columns}
    # dropped columns and the target are profiled too (as the memory engine's profile does)
    types |= {name: _raw_kind(plan.schema.field(name).type) for name in sampled.dropped}
    types[plan.target] = str(decision.target_type)
    train, every = total.stats["train"], total.stats["every"]
    again = needs_pass2(types, stored_kinds(plan.schema))
    if again:
        log.info("pass 2 (statistics of the columns stored as another type): %s", ", ".join(again))
        for name in again:
            train.pop(name, None)
            every.pop(name, None)
        parts = [(split, rel) for split, rel, _, _ in total.parts]
        stats = mapper(part_stats, [(urls.join(work, rel), again, plan.batch_rows) for _, rel in parts])
        for (split, _), entry in zip(parts, stats, strict=True):
            merge_stats(every, entry)
            if split == "train":
                merge_stats(train, entry)
    contract = contract_from_stats(sampled, train, every, decision)
    transform = transform_from_stats(contract, train, sample, cfg.features)
    show(contract, type_table(contract, sample, transform))
    counts = dict(total.rows)
    ref_rows = min(cfg.reference.rows, sample_table.num_rows)
    profile = quality.profile_from_stats(every, counts, contract, sample)
    data_quality = quality.check(cfg, profile)
    columns = [*contract.features, plan.target]
    reference = sample_table.slice(0, ref_rows).select(columns)
    _write_table(reference, urls.join(work, "reference.parquet"))
    write_json(work, CONTRACT, contract.to_dict())
    write_json(work, PREPROCESS, transform.to_dict())
    meta = {
        "features": contract.features,
        "target": plan.target,
        "task": str(contract.task),
        "classes": [c.item() if hasattr(c, "item") else c for c in (contract.classes or [])],
        "encoded_features": transform.output_names,
        "dataset_hash": dataset_hash(total.parts),
        "source": cfg.source.type,
        "source_config": lineage_config(cfg.source),  # redacted: no signature of a presigned URL
        "rows": counts | {"reference": ref_rows},
        "seed": cfg.seed,
        "feedback_rows": 0,
        "layout": PARTITIONED,
        "split": {"method": "hash", "key": plan.key, "columns": list(plan.columns)},
        # every part file written, in order (relative to the prepared directory): a reader can
        # tell a complete directory from one a concurrent or killed run left other files in
        "parts": {s: [p[1] for p in total.parts if p[0] == s] for s in SPLITS},
    }
    urls.write_text(urls.join(work, quality.PROFILE), _json(profile))
    write_json(work, META, meta)  # last: PreparedData.open needs it
    data_quality["profile"] = quality.store_profile(cfg, profile)
    log.info("wrote %s: %s (dataset hash %s)", urls.redact(out), meta["rows"], meta["dataset_hash"])
    return {
        "prepared_dir": out,
        "dataset_hash": meta["dataset_hash"],
        **{f"rows_{k}": v for k, v in meta["rows"].items()},
        "data_quality": data_quality,
    }


def _raw_kind(arrow_type: Any) -> str:
    """How a column that is no input is profiled: by its stored type."""
    import pyarrow as pa

    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "numeric"
    if pa.types.is_timestamp(arrow_type):
        return "datetime"
    return "categorical"


def _json(data: dict) -> str:
    import json

    return json.dumps(data, indent=2)


def _write_table(table: Any, path: str) -> None:
    import pyarrow.parquet as pq

    with urls.open_file(path, "wb") as f:
        pq.write_table(table, f, compression="snappy")
