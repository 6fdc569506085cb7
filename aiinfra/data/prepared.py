"""The prepared dataset on disk: the contract between ``prepare`` and every later stage.

``<paths.prepared>/``: ``train.parquet``, ``val.parquet``, ``test.parquet``, ``reference.parquet``
(a sample of the training split that the monitor compares production data with) and
``meta.json`` (feature names, target, classes, content hash, row counts).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiinfra.errors import AiinfraError, DataValidationError

# pandas and numpy are imported where used: every stage module imports this one, and the runner
# imports the stage module before it validates the config

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
#: source config keys that say nothing about which data was read
NOT_LINEAGE = ("mismatch",)
META = "meta.json"


def content_hash(frame) -> str:
    """A hash of the values and column names, stable across Parquet writers and versions."""
    import pandas as pd

    h = hashlib.sha256()
    h.update(json.dumps([str(c) for c in frame.columns]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass
class PreparedData:
    root: Path
    meta: dict[str, Any]

    @classmethod
    def open(cls, root: str | Path) -> PreparedData:
        root = Path(root)
        if not (root / META).is_file():
            raise AiinfraError(
                f"no prepared data in {root} ({META} missing).", hint="run `aiinfra prepare` first (or `dvc repro`)"
            )
        return cls(root, json.loads((root / META).read_text()))

    @property
    def features(self) -> list[str]:
        return list(self.meta["features"])

    @property
    def target(self) -> str:
        return str(self.meta["target"])

    @property
    def classes(self) -> list[Any]:
        return list(self.meta["classes"])

    def path(self, split: str) -> Path:
        return self.root / f"{split}.parquet"

    def read(self, split: str):
        import pandas as pd

        return pd.read_parquet(self.path(split))

    def arrays(self, split: str):
        """(x float32 [n, features], y int64 class indices [n]) of a split."""
        import numpy as np

        frame = self.read(split)
        x = frame[self.features].to_numpy(dtype=np.float32)
        index = {c: i for i, c in enumerate(self.classes)}
        y = np.fromiter((index[v] for v in frame[self.target].tolist()), dtype=np.int64, count=len(frame))
        return x, y

    def source(self, source_cfg: Any) -> dict[str, Any]:
        """The source config the prepared data was made from (``meta.json``, written by prepare),
        for lineage. When the composed ``source_cfg`` contradicts it (``aiinfra prepare
        source=other`` then a plain ``aiinfra train``), a warning names the differing keys, or
        with ``source.mismatch=fail`` an error. Data prepared before aiinfra recorded it: the
        composed config, unchecked."""
        from aiinfra.config.typed import to_dict

        composed = {k: v for k, v in to_dict(source_cfg).items() if k not in NOT_LINEAGE}
        recorded = self.meta.get("source_config")
        if recorded is None:
            return composed
        differ = sorted(k for k in set(composed) | set(recorded) if composed.get(k) != recorded.get(k))
        if differ:
            shown = ", ".join(f"source.{k}={recorded.get(k)!r} (config: {composed.get(k)!r})" for k in differ[:6])
            message = f"the prepared data in {self.root} was made from another source than this config's: {shown}"
            if source_cfg.mismatch == "fail":
                raise DataValidationError(
                    message + ".",
                    hint="run `aiinfra prepare` with this config first, or give the same source overrides",
                )
            log.warning("%s; the run records the prepared data's source (source.mismatch=fail: an error)", message)
        return recorded
