"""Mixed-type model directories for the raw-row serving tests, built with the real feature code.

The contract is inferred and the preprocessing fitted by ``aiinfra.data.features`` (what
``prepare`` runs) on a table with numbers with gaps, categories, booleans, ISO dates and a text
column; the network is the real MLP saved by ``aiinfra.models.model_dir.save_model`` (what
``train`` writes) with its scaler fitted on the encoded train rows. Only the weights are untrained:
served predictions are compared with the offline Predictor, not with the truth.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

CITIES = ["Lyon", "Oslo", "Porto", "Riga", "Turin"]
COLUMNS = ["age", "income", "city", "member", "signup", "note"]


def raw_table(rows: int = 400, seed: int = 0, task: str = "binary") -> pd.DataFrame:
    """The training table: numbers (income with gaps), categories, booleans, dates, text, target."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, rows).astype(float)
    income = np.round(rng.normal(50_000, 15_000, rows), 2)
    income[rng.random(rows) < 0.1] = np.nan
    city = rng.choice(CITIES, rows)
    member = rng.random(rows) < 0.4
    signup = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, rows), unit="D")
    words = np.array(["late", "fee", "refund", "happy", "support", "upgrade", "cancel"])
    note = [" ".join(rng.choice(words, 3)) for _ in range(rows)]
    score = (age - 50) / 20 + (city == "Oslo") + member - np.nan_to_num(income - 50_000) / 30_000
    if task == "regression":
        target = np.round(score * 10 + rng.normal(0, 1, rows), 3)
    else:
        target = (score + rng.normal(0, 0.5, rows) > 0.3).astype(int)
    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "city": city,
            "member": member,
            "signup": signup.strftime("%Y-%m-%d"),
            "note": note,
            "target": target,
        }
    )


def make_raw_model(path: Path, *, task: str = "binary", seed: int = 0, rows: int = 400) -> Path:
    """A model directory with contract.json + preprocess.json (``path`` must be named ``model``
    for a registry upload; any name for a local model URI)."""
    import torch

    from aiinfra.data.features import FeaturesConfig, FeatureTransform, FeatureType, Task, infer_contract
    from aiinfra.models.model_dir import InferenceModel, build_network, save_model

    frame = raw_table(rows, seed, task)
    train_rows = frame.index[: int(rows * 0.8)]
    cfg = FeaturesConfig(
        task=Task(task), types={"note": FeatureType.text, "signup": FeatureType.datetime}, text_buckets=8
    )
    contract = infer_contract(frame, SimpleNamespace(target="target", columns={}), cfg, train_rows)
    transform = FeatureTransform.fit(frame.loc[train_rows], contract, cfg)
    x = transform.transform(contract.check_frame(frame.loc[train_rows]))
    classes = [] if task == "regression" else list(contract.classes)
    torch.manual_seed(seed)
    n_out = 1 if task == "regression" else len(classes)
    net = build_network("mlp", {"hidden": 8, "layers": 1, "dropout": 0.0}, x.shape[1], n_out)
    module = InferenceModel(net, x.shape[1])
    module.scaler.fit(torch.from_numpy(x))
    y = frame.loc[train_rows, "target"].to_numpy(dtype=float)
    save_model(
        module,
        path,
        component="mlp",
        model_cfg={"hidden": 8, "layers": 1, "dropout": 0.0},
        features=contract.features,
        classes=classes,
        target="target",
        task=task,
        encoded_features=list(transform.output_names),
        target_mean=float(y.mean()) if task == "regression" else None,
        target_std=float(y.std()) if task == "regression" else None,
        contract=contract,
        transform=transform,
    )
    return path


def request_rows(rows: int = 20, seed: int = 1) -> pd.DataFrame:
    """Rows a client sends: the raw columns as JSON values (NaN -> None), no target."""
    frame = raw_table(rows, seed)[COLUMNS]
    return frame.astype(object).where(frame.notna(), None)


def records(frame: pd.DataFrame) -> list[dict]:
    out = []
    for rec in frame.to_dict(orient="records"):
        out.append({k: (v.item() if isinstance(v, np.generic) else v) for k, v in rec.items()})
    return out
