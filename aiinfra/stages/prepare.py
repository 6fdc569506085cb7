"""``aiinfra prepare``: read the source, validate it, split it by seed, write Parquet."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from aiinfra.config.typed import to_dict
from aiinfra.data.prepared import META, NOT_LINEAGE, SPLITS, content_hash
from aiinfra.errors import DataValidationError
from aiinfra.plugins.manager import get_plugins

# pandas and scikit-learn are imported where used: the runner imports this module before it
# validates the config
log = logging.getLogger(__name__)


def _split(frame, cfg):
    """train/val/test by ``seed``; the shares are checked in validation (SplitConfig.check)."""
    from sklearn.model_selection import train_test_split

    val, test, target = cfg.split.val, cfg.split.test, cfg.source.target
    stratify = frame[target] if cfg.split.stratify and frame[target].value_counts().min() >= 3 else None
    rest, test_df = train_test_split(frame, test_size=test, random_state=cfg.seed, stratify=stratify)
    stratify_rest = rest[target] if stratify is not None else None
    train_df, val_df = train_test_split(rest, test_size=val / (1 - test), random_state=cfg.seed, stratify=stratify_rest)
    return {"train": train_df, "val": val_df, "test": test_df}


def read_feedback(cfg: Any, features: list[str], target: str):
    """Labelled production rows under ``paths.feedback`` (exported by the monitor's retrain
    policy), or None. Rows without a label, or files without the model's columns, are skipped
    with a log line: training needs both features and the target."""
    import pandas as pd

    files = sorted(Path(cfg.paths.feedback).glob("*.parquet"))
    frames = []
    for path in files:
        frame = pd.read_parquet(path)
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


def run(cfg: Any) -> dict[str, Any]:
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
        frame = pd.concat([frame, feedback.astype(frame.dtypes.to_dict())], ignore_index=True)
        log.info("added %d labelled feedback rows from %s", feedback_rows, cfg.paths.feedback)
    if len(frame) < 20:
        raise DataValidationError(f"the source has only {len(frame)} rows; at least 20 are needed to split.")
    classes = sorted(frame[target].unique().tolist())
    parts = _split(frame, cfg)
    out = Path(cfg.paths.prepared)
    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        parts[split].reset_index(drop=True).to_parquet(out / f"{split}.parquet", index=False)
    ref_rows = min(cfg.reference.rows, len(parts["train"]))
    reference = parts["train"].sample(n=ref_rows, random_state=cfg.seed).reset_index(drop=True)
    reference.to_parquet(out / "reference.parquet", index=False)
    meta = {
        "features": features,
        "target": target,
        "classes": [c.item() if hasattr(c, "item") else c for c in classes],
        "dataset_hash": content_hash(frame),
        "source": cfg.source.type,
        # what later stages record as lineage (and check the composed config against)
        "source_config": {k: v for k, v in to_dict(cfg.source).items() if k not in NOT_LINEAGE},
        "rows": {split: len(parts[split]) for split in SPLITS} | {"reference": ref_rows},
        "seed": cfg.seed,
        "feedback_rows": feedback_rows,
    }
    (out / META).write_text(json.dumps(meta, indent=2))
    log.info("wrote %s: %s (dataset hash %s)", out, meta["rows"], meta["dataset_hash"])
    return {
        "prepared_dir": str(out),
        "dataset_hash": meta["dataset_hash"],
        **{f"rows_{k}": v for k, v in meta["rows"].items()},
    }
