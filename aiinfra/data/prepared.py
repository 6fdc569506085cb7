"""The prepared dataset on disk: the contract between ``prepare`` and every later stage.

``<paths.prepared>/``: ``train.parquet``, ``val.parquet``, ``test.parquet``, ``reference.parquet``
(a sample of the training split that the monitor compares production data with), the raw
columns as the source had them; ``meta.json`` (feature names, target, task, classes, encoded
feature names, content hash, row counts); ``contract.json`` (column types and train statistics)
and ``preprocess.json`` (the preprocessing fitted on the train split), see docs/features.md.
Data prepared before contracts existed (no ``contract.json``) reads as all-numeric
classification data with an identity transform.

Two layouts: ``flat`` (``prepare.engine=memory``: one ``<split>.parquet`` per split) and
``partitioned`` (``stream``/``ray``: a directory ``<split>.parquet/`` of ``part-<file>-<n>.parquet``; ``meta.json`` says
``"layout": "partitioned"``). The prepared directory may be a local path or an fsspec URL
(``s3://bucket/prepared``): every read and write goes through :mod:`aiinfra.storage.urls`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from aiinfra.errors import AiinfraError, DataValidationError
from aiinfra.storage import urls

# pandas and numpy are imported where used: every stage module imports this one, and the runner
# imports the stage module before it validates the config

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
#: source config keys that say nothing about which data was read
NOT_LINEAGE = ("mismatch",)
META = "meta.json"
REFERENCE = "reference"
PARTITIONED = "partitioned"


def location(root: str | Path) -> Path | str:
    """A local prepared directory as a ``Path`` (what callers always had), a URL as its string."""
    return root if urls.is_remote(root) else urls.local_path(root)


def write_json(root: str | Path, name: str, data: dict[str, Any]) -> None:
    """``<root>/<name>`` as indented JSON, on a local path or a URL."""
    urls.write_text(urls.join(root, name), json.dumps(data, indent=2))


def read_json(root: str | Path, name: str) -> dict[str, Any]:
    path = urls.join(root, name)
    with urls.storage_errors(path, "paths.prepared"):
        if not urls.isfile(path):
            raise DataValidationError(
                f"{urls.redact(path)} is missing.", hint="run `aiinfra prepare` (and train) again"
            )
        text = urls.read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataValidationError(
            f"{urls.redact(path)} is not valid JSON: {exc}.", hint="run `aiinfra prepare` again"
        ) from None


def read_parquet(paths: str | Path | list, columns: list[str] | None = None):
    """One pyarrow Table of a Parquet file or of several (in the order given), local or URL."""
    import pyarrow.dataset as ds

    paths = paths if isinstance(paths, list) else [paths]
    fs, _ = urls.arrow_filesystem(paths[0])
    inner = [urls.arrow_filesystem(p)[1] for p in paths]
    return ds.dataset(inner, filesystem=fs, format="parquet").to_table(columns=columns)


def write_frame(frame, path: str | Path) -> None:
    """A pandas frame as one Parquet file at a local path or URL."""
    if not urls.is_remote(path):
        frame.to_parquet(path, index=False)
        return
    with urls.open_file(path, "wb") as f:
        frame.to_parquet(f, index=False)


def content_hash(frame) -> str:
    """A hash of the values and column names, stable across Parquet writers and versions."""
    import pandas as pd

    h = hashlib.sha256()
    h.update(json.dumps([str(c) for c in frame.columns]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def lineage_config(source_cfg: Any) -> dict[str, Any]:
    """The source config as lineage records it (meta.json ``source_config``, the run's
    parameters): without the keys that do not change the data, every URL redacted (a presigned
    ``source.path`` carries a signature and a session token in its query)."""
    from aiinfra.config.typed import to_dict

    return urls.redact_values({k: v for k, v in to_dict(source_cfg).items() if k not in NOT_LINEAGE})


@dataclass
class PreparedData:
    root: Path | str  # a local directory, or the URL of one
    meta: dict[str, Any]

    @classmethod
    def open(cls, root: str | Path) -> PreparedData:
        root = location(root)
        # an unreachable store or refused keys are that error, not "no prepared data"
        with urls.storage_errors(root, "paths.prepared"):
            if not urls.isfile(urls.join(root, META)):
                raise AiinfraError(
                    f"no prepared data in {urls.redact(root)} ({META} missing).",
                    hint="run `aiinfra prepare` first (or `dvc repro`)",
                )
            return cls(root, json.loads(urls.read_text(urls.join(root, META))))

    @property
    def partitioned(self) -> bool:
        """Each split a directory of part files (``prepare.engine=stream`` or ``ray``)."""
        return self.meta.get("layout") == PARTITIONED

    def _has(self, name: str) -> bool:
        # an error of the store raises: read as "absent", contract.json would silently become an
        # all-numeric contract
        with urls.storage_errors(urls.join(self.root, name), "paths.prepared"):
            return urls.isfile(urls.join(self.root, name))

    @property
    def features(self) -> list[str]:
        return list(self.meta["features"])

    @property
    def target(self) -> str:
        return str(self.meta["target"])

    @property
    def classes(self) -> list[Any]:
        """Sorted class labels; [] for regression."""
        return list(self.meta.get("classes") or [])

    @property
    def task(self):
        """binary, multiclass or regression (data prepared before tasks existed: classification)."""
        from aiinfra.data.schema import Task

        if "task" in self.meta:
            return Task(self.meta["task"])
        return Task.binary if len(self.classes) == 2 else Task.multiclass

    @cached_property
    def contract(self):
        """The :class:`~aiinfra.data.features.DataContract` (``contract.json``); for data
        prepared before it existed, one built from ``meta.json``: every feature numeric."""
        from aiinfra.data.features import CONTRACT, ColumnSpec, DataContract, FeatureType, Task

        if self._has(CONTRACT):
            return DataContract.from_dict(read_json(self.root, CONTRACT))
        columns = [ColumnSpec(f, FeatureType.numeric, False, 0.0, 0, "") for f in self.features]
        classification = self.task != Task.regression
        target_type = FeatureType.numeric
        return DataContract(columns, self.target, self.task, self.classes if classification else None, target_type)

    @cached_property
    def transform(self):
        """The fitted :class:`~aiinfra.data.features.FeatureTransform` (``preprocess.json``);
        for data prepared before it existed, the identity on the float feature columns."""
        from aiinfra.data.features import PREPROCESS, FeatureTransform, Task

        if self._has(PREPROCESS):
            return FeatureTransform.from_dict(read_json(self.root, PREPROCESS))
        classes = self.classes if self.task != Task.regression else None
        return FeatureTransform.identity(self.features, self.target, classes, self.task)

    @property
    def encoded_features(self) -> list[str]:
        """The encoded columns the network takes (its input width is their number)."""
        return list(self.meta.get("encoded_features") or self.transform.output_names)

    def path(self, split: str) -> Path | str:
        """A split's Parquet file, or in the partitioned layout its directory of part files
        (``reference`` is always one file)."""
        # one name for both layouts (Spark's convention: a directory named like a file), so DVC's
        # dependencies (data/prepared/train.parquet) and monitor.current name either layout
        return location(urls.join(self.root, f"{split}.parquet"))

    def files(self, split: str) -> list[Path | str]:
        """The Parquet files of a split, in order (one in the flat layout)."""
        if self.partitioned and split != REFERENCE:
            with urls.storage_errors(self.path(split), "paths.prepared"):
                found = [str(p) for p in urls.glob(self.path(split), "part-*.parquet")]
            listed = (self.meta.get("parts") or {}).get(split) if isinstance(self.meta.get("parts"), dict) else None
            if listed is None:  # data prepared before meta.json listed its parts
                return [location(p) for p in found]
            expected = [str(urls.join(self.root, rel)) for rel in listed]
            missing = sorted(set(expected) - set(found))
            if missing:
                shown = ", ".join(urls.redact(m) for m in missing[:3]) + (" ..." if len(missing) > 3 else "")
                raise DataValidationError(
                    f"the prepared {split} split lacks {len(missing)} of the {len(expected)} part files meta.json "
                    f"lists: {shown}.",
                    hint="run `aiinfra prepare` again (a copy or a sync of the prepared data was incomplete)",
                )
            extra = set(found) - set(expected)
            if extra:
                log.warning(
                    "%d file(s) in %s are not parts of the prepared data (meta.json) and are not read",
                    len(extra),
                    urls.redact(self.path(split)),
                )
            return [location(p) for p in expected]
        return [self.path(split)]

    def read_table(self, split: str, columns: list[str] | None = None):
        """A split as one pyarrow Table (every part, in order)."""
        files = self.files(split)
        if not files:
            import pyarrow as pa

            names = columns or [*self.features, self.target]
            return pa.table({n: pa.array([]) for n in names})
        with urls.storage_errors(self.path(split), "paths.prepared"):
            return read_parquet(files, columns)

    def read(self, split: str, columns: list[str] | None = None):
        """A split as a pandas frame (the raw columns as the source had them)."""
        path = self.path(split)
        if isinstance(path, Path) and path.is_file():  # the flat local layout: pandas' own reader
            import pandas as pd

            return pd.read_parquet(path, columns=columns)
        return self.read_table(split, columns).to_pandas()

    def arrays(self, split: str):
        """(x float32 [n, encoded features], y) of a split: x encoded by the fitted transform, y
        int64 class indices (classification) or float32 values (regression)."""
        frame = self.read(split)
        return self.transform.transform(frame), self.transform.encode_target(frame[self.target])

    def source(self, source_cfg: Any) -> dict[str, Any]:
        """The source config the prepared data was made from (``meta.json``, written by prepare),
        for lineage. When the composed ``source_cfg`` contradicts it (``aiinfra prepare
        source=other`` then a plain ``aiinfra train``), a warning names the differing keys, or
        with ``source.mismatch=fail`` an error. Data prepared before aiinfra recorded it: the
        composed config, unchecked."""
        composed = lineage_config(source_cfg)
        recorded = self.meta.get("source_config")
        if recorded is None:
            return composed
        # redacted on both sides: a rotated signature is the same source (and data prepared
        # before lineage was redacted must not hand its keys on)
        recorded = urls.redact_values(recorded)
        differ = sorted(k for k in set(composed) | set(recorded) if composed.get(k) != recorded.get(k))
        if differ:
            shown = ", ".join(f"source.{k}={recorded.get(k)!r} (config: {composed.get(k)!r})" for k in differ[:6])
            where = urls.redact(self.root)
            message = f"the prepared data in {where} was made from another source than this config's: {shown}"
            if source_cfg.mismatch == "fail":
                raise DataValidationError(
                    message + ".",
                    hint="run `aiinfra prepare` with this config first, or give the same source overrides",
                )
            log.warning("%s; the run records the prepared data's source (source.mismatch=fail: an error)", message)
        return recorded
