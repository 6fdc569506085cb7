"""The training data path.

Tabular data that fits in memory is served as whole batches sliced from two tensors: no
per-item ``__getitem__``, no collate, no worker processes. That is what makes training fast on a
small CPU machine (README, training section: per-item fetching and collate cost more than the
math for a small MLP). Data larger than memory streams from the Parquet files in record batches
(pyarrow) through DataLoader workers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch


class TensorBatches:
    """Whole-batch iteration over in-memory tensors, reshuffled every epoch by ``seed + epoch``.

    Under DDP each rank takes a disjoint strided slice of the permutation (the same
    permutation on every rank, since the seed is shared), as DistributedSampler would.
    Lightning calls ``sampler.set_epoch`` on whatever it iterates; ``sampler`` is this object.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0):
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle, self.seed = shuffle, seed
        self.epoch = 0
        self.sampler = self  # Lightning calls sampler.set_epoch(epoch) on what it iterates
        self.batch_sampler = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _rank(self) -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def _indices(self) -> torch.Tensor | None:
        rank, world = self._rank()
        n = len(self.x)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            idx = torch.randperm(n, generator=g)
        elif world > 1:
            idx = torch.arange(n)
        else:
            return None  # contiguous slices, no gather at all
        if world > 1:
            idx = idx[: n - n % world][rank::world]  # equal shares keep DDP ranks in lockstep
        return idx

    def __len__(self) -> int:
        _, world = self._rank()
        n = len(self.x) // world if world > 1 else len(self.x)
        return math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        idx = self._indices()
        n = len(self.x) if idx is None else len(idx)
        for start in range(0, n, self.batch_size):
            if idx is None:
                yield self.x[start : start + self.batch_size], self.y[start : start + self.batch_size]
            else:
                take = idx[start : start + self.batch_size]
                yield self.x[take], self.y[take]


def parquet_files(path: str | Path) -> list[str | Path]:
    """The Parquet files of a split: the file itself, or the sorted part files of a split
    directory (the partitioned layout of ``prepare.engine=stream``/``ray``); local or a URL."""
    from aiinfra.storage import urls

    if urls.isdir(path):
        return list(urls.glob(path, "*.parquet"))
    return [path]


def _open_parquet(path: str | Path) -> pq.ParquetFile:
    from aiinfra.storage import urls

    if urls.is_remote(path):
        return pq.ParquetFile(urls.open_file(path))  # fsspec file: read ranges on demand
    return pq.ParquetFile(path)


class ParquetStream(torch.utils.data.IterableDataset):
    """Stream (x, y) batches from a Parquet file, or a directory of part files, in record
    batches; each DataLoader worker reads a disjoint set of (file, row group) units, so memory
    stays bounded by chunk size x workers. Under DDP each rank reads every chunk and keeps a
    disjoint 1/world of its rows. ``path`` may be local or an fsspec URL.

    ``transform`` (the prepared data's fitted FeatureTransform) encodes each chunk's raw columns
    and its target, as ``PreparedData.arrays`` does in memory; without it the feature columns are
    read as float32 and the target mapped to ``classes``. ``target_scale`` (mean, std): a
    regression target is standardized with the train split's statistics."""

    def __init__(
        self,
        path: Path,
        features: list[str],
        target: str,
        classes: list,
        batch_size: int,
        chunk_rows: int = 65536,
        shuffle: bool = True,
        seed: int = 0,
        transform=None,
        target_scale: tuple[float, float] | None = None,
    ):
        self.transform, self.target_scale = transform, target_scale
        # a URL stays a string (Path would fold its "//")
        self.path, self.features, self.target = path, list(features), target
        self.class_index = {c: i for i, c in enumerate(classes)}
        self.batch_size, self.chunk_rows, self.shuffle, self.seed = batch_size, chunk_rows, shuffle, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._passes = epoch, 0

    def __iter__(self):
        # Each pass is an epoch: persistent DataLoader workers keep their own copy of this object,
        # which set_epoch in the main process never reaches, so the copy counts its own passes.
        epoch = self.epoch + getattr(self, "_passes", 0)
        self._passes = getattr(self, "_passes", 0) + 1

        info = torch.utils.data.get_worker_info()
        wid, nworkers = (info.id, info.num_workers) if info else (0, 1)
        rank, world = _rank_world()
        files = parquet_files(self.path)
        # row-group counts come from the footers only (no data read)
        units = [(f, g) for f, path in enumerate(files) for g in range(_open_parquet(path).num_row_groups)]
        units = [u for i, u in enumerate(units) if i % nworkers == wid]
        # the same seed on every rank: all ranks walk the same chunks in the same order
        rng = np.random.default_rng(self.seed + epoch * 1009 + wid)
        if self.shuffle:
            order = rng.permutation(len(units))
            units = [units[i] for i in order]
        for batch in self._batches(files, units):
            x, y = self._encode(batch)
            order = rng.permutation(len(x)) if self.shuffle else np.arange(len(x))
            if world > 1:
                # every rank takes an equal strided share of each chunk (a few rows dropped), so
                # all ranks see the same number of batches: DDP hangs when one runs out first
                order = order[: len(order) - len(order) % world][rank::world]
            for s in range(0, len(order), self.batch_size):
                take = order[s : s + self.batch_size]
                yield torch.from_numpy(x[take]), torch.from_numpy(y[take])

    def _batches(self, files: list, units: list[tuple[int, int]]):
        """Record batches of the (file, row group) units in order; one file open at a time."""
        columns = [*self.features, self.target]
        current, pf = None, None
        for f, group in units:
            if f != current:
                current, pf = f, _open_parquet(files[f])
            yield from pf.iter_batches(batch_size=self.chunk_rows, row_groups=[group], columns=columns)

    def _encode(self, batch) -> tuple[np.ndarray, np.ndarray]:
        if self.transform is not None:
            frame = batch.to_pandas()
            x = self.transform.transform(frame)
            y = self.transform.encode_target(frame[self.target])
        else:
            columns = [batch.column(f).to_numpy(zero_copy_only=False) for f in self.features]
            x = np.column_stack(columns).astype(np.float32)
            y = np.fromiter((self.class_index[v] for v in batch.column(self.target).to_pylist()), np.int64)
        if self.target_scale is not None:
            mean, std = self.target_scale
            y = ((y - mean) / std).astype(np.float32)
        return x, y


def _rank_world() -> tuple[int, int]:
    # DataLoader workers are separate processes without the process group: the rank travels in
    # the environment Lightning and torchrun set for each process
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
