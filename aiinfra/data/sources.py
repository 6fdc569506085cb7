"""Built-in data sources. A source is built from its config section and ``read()``s a DataFrame
holding the feature columns and the target column."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pandas as pd

from aiinfra.data.schema import BundledDataset, SklearnDataset
from aiinfra.errors import DataValidationError
from aiinfra.storage import urls

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
        import sklearn.datasets  # here, not at the top: ~2.5 s that a CSV or Parquet source never needs

        bunch = getattr(sklearn.datasets, SKLEARN_LOADERS[self.cfg.dataset])(as_frame=True)
        frame = bunch.frame.copy()
        # column names that survive every tool on the way (Parquet, Evidently, JSON clients)
        frame.columns = [str(c).strip().replace(" ", "_") for c in frame.columns]
        if self.cfg.target != "target":
            frame = frame.rename(columns={"target": self.cfg.target})
        return frame


#: (package, file inside it, reader) of each bundled real dataset: files that ship inside the
#: installed wheels (vega_datasets' "local" datasets; its other datasets are URLs and are not used)
BUNDLED_FILES = {
    BundledDataset.penguins: ("palmerpenguins", "data/penguins.csv", "csv"),
    BundledDataset.penguins_raw: ("palmerpenguins", "data/penguins-raw.csv", "csv"),
    BundledDataset.cars: ("vega_datasets", "_data/cars.json", "json"),
    BundledDataset.seattle_weather: ("vega_datasets", "_data/seattle-weather.csv", "csv"),
}


def plain_column_name(name: str) -> str:
    """``Culmen Length (mm)`` -> ``Culmen_Length_mm``: names that work unquoted in command-line
    overrides (features.drop=[...]), Parquet, JSON clients and drift reports."""
    return re.sub(r"[^0-9A-Za-z_]+", "_", str(name).strip()).strip("_")


class BundledSource(Source):
    """A real table (strings, gaps, dates) shipped inside an installed package: read through
    importlib.resources, no download."""

    def read(self) -> pd.DataFrame:
        from importlib import resources

        package, name, kind = BUNDLED_FILES[self.cfg.dataset]
        try:
            path = resources.files(package).joinpath(name)
        except ModuleNotFoundError:
            raise DataValidationError(
                f"source.dataset={self.cfg.dataset} needs the '{package}' package, which is not installed.",
                hint=f"pip install {package} (an aiinfra dependency)",
            ) from None
        with resources.as_file(path) as local:
            frame = pd.read_json(local) if kind == "json" else pd.read_csv(local)
        frame.columns = [plain_column_name(c) for c in frame.columns]
        return frame


class _FileSource(Source):
    """A file source whose ``source.path`` is a local path or an fsspec URL (``s3://bucket/key``)."""

    def _path(self) -> str | Path:
        """The local ``Path``, or the URL as given (checked to exist: a missing object is one
        StorageError naming it)."""
        if urls.is_remote(self.cfg.path):
            url = str(self.cfg.path)
            with urls.storage_errors(url):
                found = urls.exists(url)
            if not found:
                raise urls.missing_error(url, "source.path")
            return url
        path = urls.local_path(self.cfg.path)
        if not path.exists():
            raise DataValidationError(
                f"source file '{path}' does not exist.",
                hint=f"set source.path=... (relative to the project root {Path.cwd()})",
            )
        return path


#: bytes that never belong in a CSV value: ASCII control characters but tab, LF and CR. pandas'
#: C parser ends a field at NUL (``0.4721`` with a NUL after ``0.47`` reads as ``0.47``, silently)
#: and passes the others through as text; either way the number read is not the one written.
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class CSVSource(_FileSource):
    """A CSV file with a header row. Refused with the row and column named, before pandas reads
    it: control bytes in the data, a header with a duplicated or blank column name (after
    stripping spaces: pandas would silently rename ``a`` to ``a.1``), an empty file, a header
    without data rows."""

    def read(self) -> pd.DataFrame:
        path = self._path()
        with urls.storage_errors(path):
            raw = urls.read_bytes(path)
        path = urls.redact(path)  # what messages name: never a credential of a URL
        if not raw.strip():
            raise DataValidationError(f"CSV '{path}' is empty.", hint="write a header row and data rows")
        header = _check_header(path, raw)
        _check_bytes(path, raw, header)
        try:
            frame = pd.read_csv(io.BytesIO(raw))  # the bytes checked above, not a second read
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise DataValidationError(f"cannot read CSV '{path}': {exc}") from None
        if frame.empty:
            raise DataValidationError(
                f"CSV '{path}' has a header ({', '.join(header[:5])}{', ...' if len(header) > 5 else ''}) "
                "but no data rows.",
                hint="check the export that wrote it, or point source.path at the full file",
            )
        return frame


def _check_header(path: str | Path, raw: bytes) -> list[str]:
    """The header's column names; a duplicate (after stripping spaces) or a blank name is an error."""
    first = raw.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8-sig", errors="replace")
    names = next(csv.reader(io.StringIO(first)), [])
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        key = name.strip()
        if not key:
            raise DataValidationError(
                f"CSV '{path}': column {i + 1} of the header has no name.",
                hint="give every column a name in the header row",
            )
        if key in seen:
            raise DataValidationError(
                f"CSV '{path}': column name '{key}' appears twice in the header (columns {seen[key] + 1} and {i + 1}).",
                hint="rename or drop one of them: aiinfra does not guess which one is meant",
            )
        seen[key] = i
    return [n.strip() for n in names]


def _check_bytes(path: str | Path, raw: bytes, header: list[str]) -> None:
    bad = _CONTROL_BYTES.search(raw)
    if bad is None:
        return
    at = bad.start()
    line_start = raw.rfind(b"\n", 0, at) + 1
    line_end = raw.find(b"\n", at)
    line = raw[line_start : line_end if line_end >= 0 else len(raw)]
    column = line[: at - line_start].count(b",")  # the field the byte is in (unquoted CSV)
    name = f" ('{header[column]}')" if column < len(header) else ""
    row = raw.count(b"\n", 0, at)  # file line index: the header is line 0, data row 1 is line 1
    where = "the header" if row == 0 else f"data row {row} (line {row + 1})"
    raise DataValidationError(
        f"CSV '{path}': byte 0x{raw[at]:02x} (a control character) in {where}, column {column + 1}{name}: "
        f"{line.decode('utf-8', errors='replace')[:80]!r}.",
        hint="control bytes (NUL and friends) are no part of a value and would change what is read; "
        "fix the export that wrote the file",
    )


class ParquetSource(_FileSource):
    """A Parquet file, or a directory (an object-store prefix) of Parquet files read as one
    dataset (hive partitions become columns; ``_``/``.`` names are skipped, as Spark writes them)."""

    def read(self) -> pd.DataFrame:
        path = self._path()
        try:
            if not urls.is_remote(path):
                return pd.read_parquet(path)
            import pyarrow.dataset as ds

            with urls.storage_errors(path):
                fs, inner = urls.arrow_filesystem(path)
                return ds.dataset(inner, filesystem=fs, format="parquet", partitioning="hive").to_table().to_pandas()
        except urls.StorageError:
            raise
        except Exception as exc:  # pyarrow raises several types for a broken file
            shown = urls.redact(path)
            raise DataValidationError(f"cannot read Parquet '{shown}': {type(exc).__name__}: {exc}") from None


class SyntheticSource(Source):
    """``make_classification`` with a fixed seed: any size, for tests and benchmarks."""

    def read(self) -> pd.DataFrame:
        import sklearn.datasets

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
