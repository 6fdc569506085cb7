"""Built-in data sources. A source is built from its config section and ``read()``s a DataFrame
holding the feature columns and the target column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import sklearn.datasets

from aiinfra.data.schema import SklearnDataset
from aiinfra.errors import DataValidationError

#: the scikit-learn loader of each bundled dataset
SKLEARN_LOADERS = {
    SklearnDataset.breast_cancer: "load_breast_cancer",
    SklearnDataset.wine: "load_wine",
    SklearnDataset.digits: "load_digits",
    SklearnDataset.iris: "load_iris",
}


class Source:
    def __init__(self, cfg: Any):
        self.cfg = cfg

    def read(self) -> pd.DataFrame:  # pragma: no cover - interface
        raise NotImplementedError


class SklearnSource(Source):
    """A dataset that ships inside scikit-learn: loads offline, no download."""

    def read(self) -> pd.DataFrame:
        bunch = getattr(sklearn.datasets, SKLEARN_LOADERS[self.cfg.dataset])(as_frame=True)
        frame = bunch.frame.copy()
        # column names that survive every tool on the way (Parquet, Evidently, JSON clients)
        frame.columns = [str(c).strip().replace(" ", "_") for c in frame.columns]
        if self.cfg.target != "target":
            frame = frame.rename(columns={"target": self.cfg.target})
        return frame


class _FileSource(Source):
    def _path(self) -> Path:
        path = Path(self.cfg.path)
        if not path.exists():
            raise DataValidationError(
                f"source file '{path}' does not exist.",
                hint=f"set source.path=... (relative to the project root {Path.cwd()})",
            )
        return path


class CSVSource(_FileSource):
    def read(self) -> pd.DataFrame:
        path = self._path()
        try:
            return pd.read_csv(path)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise DataValidationError(f"cannot read CSV '{path}': {exc}") from None


class ParquetSource(_FileSource):
    def read(self) -> pd.DataFrame:
        path = self._path()
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a broken file
            raise DataValidationError(f"cannot read Parquet '{path}': {type(exc).__name__}: {exc}") from None


class SyntheticSource(Source):
    """``make_classification`` with a fixed seed: any size, for tests and benchmarks."""

    def read(self) -> pd.DataFrame:
        c = self.cfg
        x, y = sklearn.datasets.make_classification(
            n_samples=c.rows,
            n_features=c.features,
            n_informative=c.informative,
            n_redundant=0,
            n_classes=c.classes,
            random_state=c.seed,
        )
        frame = pd.DataFrame(x.astype("float32"), columns=[f"f{i}" for i in range(x.shape[1])])
        frame[c.target] = y
        return frame
