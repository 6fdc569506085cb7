"""The two reference trainings that bench/train_bench.py compares ``aiinfra train`` with.

Run as a subprocess (so whole-process wall time and imports are counted like aiinfra's):

    python bench/train_baselines.py lightning <prepared dir> <epochs> <batch_size> <seed>
    python bench/train_baselines.py loop      <prepared dir> <epochs> <batch_size> <seed> <threads> [lr]

``lightning`` is the script a user would write first: TensorDataset + DataLoader(shuffle=True) +
a default Trainer (torch's default threads). ``loop`` is a hand-written PyTorch loop that slices
whole batches from in-memory tensors. Both train the same MLP as aiinfra's ``mlp`` component
(16 -> 64 -> 64 -> classes, ReLU, dropout 0.1, AdamW lr 3e-3, standardised inputs) and print one
JSON line: fit seconds, samples/s, validation accuracy, import seconds.
"""

from __future__ import annotations

import json
import sys
import time

T0 = time.perf_counter()


def _data(prepared: str):
    import numpy as np
    import pandas as pd

    with open(f"{prepared}/meta.json") as f:
        meta = json.load(f)
    feats, target = meta["features"], meta["target"]
    index = {c: i for i, c in enumerate(meta["classes"])}

    def load(split):
        frame = pd.read_parquet(f"{prepared}/{split}.parquet")
        x = frame[feats].to_numpy(dtype=np.float32)
        y = np.array([index[v] for v in frame[target].tolist()], dtype=np.int64)
        return x, y

    (x, y), (xv, yv) = load("train"), load("val")
    mean, std = x.mean(0), x.std(0) + 1e-6
    return (x - mean) / std, y, (xv - mean) / std, yv, len(index)


def _mlp(torch, n_in, n_out):
    nn = torch.nn
    return nn.Sequential(
        nn.Linear(n_in, 64),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Linear(64, n_out),
    )


def plain_lightning(prepared: str, epochs: int, batch_size: int, seed: int) -> dict:
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    t_imp = time.perf_counter() - T0
    x, y, xv, yv, k = _data(prepared)
    L.seed_everything(seed, verbose=False)

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _mlp(torch, x.shape[1], k)

        def training_step(self, batch, _):
            xb, yb = batch
            loss = torch.nn.functional.cross_entropy(self.net(xb), yb)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, _):
            xb, yb = batch
            self.log("val_acc", (self.net(xb).argmax(1) == yb).float().mean())

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=3e-3)

    train = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=batch_size, shuffle=True)
    val = DataLoader(TensorDataset(torch.from_numpy(xv), torch.from_numpy(yv)), batch_size=batch_size)
    module = Module()
    trainer = L.Trainer(max_epochs=epochs, enable_progress_bar=False)
    t = time.perf_counter()
    trainer.fit(module, train, val)
    fit = time.perf_counter() - t
    module.eval()
    with torch.no_grad():
        acc = float((module.net(torch.from_numpy(xv)).argmax(1) == torch.from_numpy(yv)).float().mean())
    return {
        "fit_seconds": fit,
        "samples_per_second": len(x) * epochs / fit,
        "val_acc": acc,
        "import_seconds": t_imp,
        "threads": torch.get_num_threads(),
    }


def hand_loop(prepared: str, epochs: int, batch_size: int, seed: int, threads: int, lr: float = 3e-3) -> dict:
    import torch

    t_imp = time.perf_counter() - T0
    if threads > 0:
        torch.set_num_threads(threads)
    x, y, xv, yv, k = _data(prepared)
    torch.manual_seed(seed)
    x, y, xv, yv = (torch.from_numpy(a) for a in (x, y, xv, yv))
    net = _mlp(torch, x.shape[1], k)
    opt = torch.optim.AdamW(net.parameters(), lr=lr)
    t = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed + epoch))
        for s in range(0, len(x), batch_size):
            take = perm[s : s + batch_size]
            loss = torch.nn.functional.cross_entropy(net(x[take]), y[take])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            acc = float((net(xv).argmax(1) == yv).float().mean())
    fit = time.perf_counter() - t
    return {
        "fit_seconds": fit,
        "samples_per_second": len(x) * epochs / fit,
        "val_acc": acc,
        "import_seconds": t_imp,
        "threads": torch.get_num_threads(),
    }


if __name__ == "__main__":
    kind, prepared, epochs, bs, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    if kind == "lightning":
        out = plain_lightning(prepared, epochs, bs, seed)
    else:
        out = hand_loop(prepared, epochs, bs, seed, int(sys.argv[6]), float(sys.argv[7]) if len(sys.argv) > 7 else 3e-3)
    print("RESULT " + json.dumps(out), flush=True)
