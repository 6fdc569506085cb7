"""``aiinfra prepare``: read the source, validate it, split it by seed, then on the train split
only infer the column types and fit the preprocessing; profile the data and compare the profile
with the last run's (``audit.data_quality``, docs/audit.md); write Parquet, ``meta.json``,
``contract.json``, ``preprocess.json`` and ``profile.json`` (docs/features.md)."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiinfra.data.prepared import META, SPLITS, content_hash, lineage_config, write_frame, write_json
from aiinfra.errors import DataValidationError
from aiinfra.governance import quality
from aiinfra.plugins.manager import get_plugins
from aiinfra.storage import urls

# pandas and scikit-learn are imported where used: the runner imports this module before it
# validates the config
log = logging.getLogger(__name__)


def _split(frame, cfg, classification: bool = True):
    """train/val/test by ``seed`` (index labels of ``frame`` kept); the shares are checked in
    validation (SplitConfig.check). Stratified by class for classification only."""
    from sklearn.model_selection import train_test_split

    val, test, target = cfg.split.val, cfg.split.test, cfg.source.target
    stratify = (
        frame[target] if classification and cfg.split.stratify and frame[target].value_counts().min() >= 3 else None
    )
    rest, test_df = train_test_split(frame, test_size=test, random_state=cfg.seed, stratify=stratify)
    stratify_rest = rest[target] if stratify is not None else None
    train_df, val_df = train_test_split(rest, test_size=val / (1 - test), random_state=cfg.seed, stratify=stratify_rest)
    return {"train": train_df, "val": val_df, "test": test_df}


def _previously_dropped(cfg: Any) -> set[str]:
    """Columns the last prepare left out of the model's inputs (its contract.json): production
    rows never carry them, so feedback files need not have them."""
    path = urls.join(cfg.paths.prepared, "contract.json")
    try:
        return set(json.loads(urls.read_text(path)).get("dropped", {})) if urls.isfile(path) else set()
    except (OSError, ValueError):
        return set()


def read_feedback(cfg: Any, features: list[str], target: str):
    """Labelled production rows under ``paths.feedback`` (exported by the monitor's retrain
    policy), or None. Rows without a label, or files without the model's columns, are skipped
    with a log line: training needs both features and the target. A column the model does not
    take (features.drop, or dropped by the last prepare) may be absent: it is left missing."""
    import pandas as pd

    files = urls.glob(cfg.paths.feedback, "*.parquet") if urls.isdir(cfg.paths.feedback) else []
    frames = []
    optional = set(cfg.features.drop) | _previously_dropped(cfg)
    for path in files:
        with urls.open_file(path) as f:
            frame = pd.read_parquet(f)
        path = urls.redact(path)
        for name in optional & set(features):
            if name not in frame.columns:
                frame[name] = None
        missing = [c for c in [*features, target] if c not in frame.columns]
        if missing:
            log.warning(
                "feedback %s skipped: no column(s) %s (windows need labels: monitor.feedback)", path, ", ".join(missing)
            )
            continue
        labelled = frame.loc[frame[target].notna(), [*features, target]]
        if len(labelled) < len(frame):
            log.info(
                "feedback %s: %d of %d rows have no label and are skipped", path, len(frame) - len(labelled), len(frame)
            )
        frames.append(labelled)
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True)


def _show_types(contract: Any, table: str) -> None:
    """The type table onto stdout (the user reads it; stdout is not the log, so it is not shown
    twice), and a one-line summary of it into the log (stderr, CI logs)."""
    print(table, flush=True)
    counts: dict[str, int] = {}
    for spec in contract.columns:
        counts[str(spec.type)] = counts.get(str(spec.type), 0) + 1
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    dropped = "; ".join(f"{name} ({why})" for name, why in contract.dropped.items()) or "none"
    log.info("column types: %s; dropped: %s", kinds, dropped)


def run(cfg: Any) -> dict[str, Any]:
    if str(cfg.prepare.engine) != "memory":
        from aiinfra.data.streaming import run_streaming

        return run_streaming(cfg, _show_types)
    return run_memory(cfg)


def run_memory(cfg: Any) -> dict[str, Any]:
    """``prepare.engine=memory``: the whole table in pandas (exact statistics, stratified split)."""
    from aiinfra.data.contract import CONTRACT, PREPROCESS
    from aiinfra.data.features import (
        FeatureTransform,
        Task,
        drop_missing_target,
        infer_contract,
        infer_task,
        type_table,
    )
    from aiinfra.data.validation import validate_frame  # pandas

    source = get_plugins().registry.get("source", cfg.source.type).load()(cfg.source)
    frame = source.read()
    log.info("read %d rows x %d columns from source '%s'", len(frame), frame.shape[1], cfg.source.type)
    features = validate_frame(frame, cfg.source)
    target = cfg.source.target
    frame = frame[[*features, target]].reset_index(drop=True)
    feedback = read_feedback(cfg, features, target)
    feedback_rows = 0 if feedback is None else len(feedback)
    if feedback is not None:
        import pandas as pd

        feedback[target] = feedback[target].astype(frame[target].dtype)
        # the source's dtypes, except where feedback has gaps (a dropped column production rows
        # never carry is all missing): there pandas' own upcast (int -> float) keeps them
        dtypes = {c: t for c, t in frame.dtypes.items() if feedback[c].notna().all()}
        frame = pd.concat([frame, feedback.astype(dtypes)], ignore_index=True)
        log.info("added %d labelled feedback rows from %s", feedback_rows, cfg.paths.feedback)
    frame = drop_missing_target(frame, target)
    if len(frame) < 20:
        raise DataValidationError(f"the source has only {len(frame)} rows; at least 20 are needed to split.")
    # the task looks at the whole target (every class must be known); everything fitted below
    # sees the train split only, so the split comes first
    decision = infer_task(frame[target], cfg.features)
    log.info("%s", decision.rule)
    parts = _split(frame, cfg, classification=decision.task != Task.regression)
    contract = infer_contract(frame, cfg.source, cfg.features, parts["train"].index)
    transform = FeatureTransform.fit(parts["train"], contract, cfg.features)
    _show_types(contract, type_table(contract, frame, transform))
    columns = [*contract.features, target]
    # the data's profile against the last prepare's, before anything is written: with
    # audit.data_quality=fail a changed source leaves the previous prepared data as it was
    profile = quality.profile(frame, {split: len(parts[split]) for split in SPLITS}, contract)
    data_quality = quality.check(cfg, profile)
    out = cfg.paths.prepared
    urls.makedirs(out)
    if urls.is_remote(out):
        # objects are replaced one by one: without the old meta.json first, a run that fails
        # half-way would leave new splits beside the old meta, which PreparedData would accept
        # (meta.json is written last, so only a complete output has one)
        with urls.storage_errors(out, "paths.prepared"):
            urls.remove(urls.join(out, META))
    with urls.storage_errors(out, "paths.prepared"):
        for split in SPLITS:  # a stream engine's run left <split>.parquet as a directory of parts
            path = urls.join(out, f"{split}.parquet")
            if urls.isdir(path):
                urls.remove(path, recursive=True)
    for split in SPLITS:
        write_frame(parts[split][columns].reset_index(drop=True), urls.join(out, f"{split}.parquet"))
    ref_rows = min(cfg.reference.rows, len(parts["train"]))
    reference = parts["train"][columns].sample(n=ref_rows, random_state=cfg.seed).reset_index(drop=True)
    write_frame(reference, urls.join(out, "reference.parquet"))
    write_json(out, CONTRACT, contract.to_dict())
    write_json(out, PREPROCESS, transform.to_dict())
    meta = {
        "features": contract.features,
        "target": target,
        "task": str(contract.task),
        "classes": [c.item() if hasattr(c, "item") else c for c in (contract.classes or [])],
        "encoded_features": transform.output_names,
        "dataset_hash": content_hash(frame[columns]),
        "source": cfg.source.type,
        # what later stages record as lineage (and check the composed config against)
        "source_config": lineage_config(cfg.source),
        "rows": {split: len(parts[split]) for split in SPLITS} | {"reference": ref_rows},
        "seed": cfg.seed,
        "feedback_rows": feedback_rows,
    }
    write_json(out, META, meta)
    quality.write_profile(cfg, profile, data_quality)  # last: an interrupted prepare keeps the old one
    log.info("wrote %s: %s (dataset hash %s)", urls.redact(out), meta["rows"], meta["dataset_hash"])
    return {
        "prepared_dir": str(out),
        "dataset_hash": meta["dataset_hash"],
        **{f"rows_{k}": v for k, v in meta["rows"].items()},
        "data_quality": data_quality,
    }
