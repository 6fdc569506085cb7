"""`trainer=gpu` on a GPU machine, against the CPU path, with aiinfra's own training pieces.

The full ``aiinfra train`` needs Hydra and MLflow, which GPU boxes without internet access may
not have; this script drives the same parts the train stage uses (the ``mlp`` component with
``FastDropout``, ``InferenceModel``, ``ClassifierModule``, ``TensorBatches``, ``build_trainer``)
on the benchmark's data: ``make_classification`` with the ``synthetic`` source's settings
(285,715 rows x 16 features, 8 informative, seed 0), a 70/15 train/validation split, 3 epochs,
batch 512, lr 4.24e-3 (the automatic batch size and its learning rate), seed 42. Needs torch,
lightning, numpy and scikit-learn.

    python bench/gpu_check.py                  # every variant the machine can run
    python bench/gpu_check.py --json out.json

Variants: ``gpu`` is ``conf/trainer/gpu.yaml`` as shipped (precision auto-mixed -> bf16-mixed,
threads 0; mixed precision keeps one batch per Lightning step, batches copied from host memory);
the ``gpu-*`` experiments change one thing at a time (several batches per step under bf16, the
training tensors kept on the GPU, full precision, batch 4096); ``cpu-k16`` is the ``cpu``
trainer on the same machine (1 thread, ``steps_per_call=16``). Results of the runs on an H200:
``bench/gpu/``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiinfra.training.schema import CheckpointConfig, LightningTrainerConfig  # noqa: E402 - after sys.path


def data(rows: int = 285_715):
    import numpy as np
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows, n_features=16, n_informative=8, n_redundant=0, n_classes=2, random_state=0
    )
    x, y = x.astype("float32"), y.astype("int64")
    order = np.random.default_rng(0).permutation(rows)
    n_train, n_val = int(rows * 0.7), int(rows * 0.15)
    tr, va = order[:n_train], order[n_train : n_train + n_val]
    return x[tr], y[tr], x[va], y[va]


def trainer_cfg(accelerator: str, precision: str | None, threads: int) -> LightningTrainerConfig:
    cfg = LightningTrainerConfig(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        max_epochs=3,
        progress_bar=False,
        threads=threads,
        checkpoint=CheckpointConfig(enabled=False),
    )
    cfg.check()
    return cfg


def one(
    name: str, accelerator: str, precision: str | None, threads: int, k: int, batch: int, resident: bool, arrays
) -> dict:
    import lightning as L
    import torch

    from aiinfra.models.mlp import MLPClassifier
    from aiinfra.models.model_dir import InferenceModel
    from aiinfra.training.data import TensorBatches
    from aiinfra.training.module import ClassifierModule
    from aiinfra.training.process import set_threads
    from aiinfra.training.progress import PlainProgress
    from aiinfra.training.trainer import build_trainer, resolve_precision

    x, y, xv, yv = (torch.from_numpy(a) for a in arrays)
    scale_x = x
    set_threads(threads)
    L.seed_everything(42, verbose=False)
    model = InferenceModel(MLPClassifier(16, 2, hidden=64, layers=2, dropout=0.1), 16)
    model.scaler.fit(scale_x)
    if resident:  # an experiment: training tensors kept on the GPU (the train stage does not do this)
        x, y, xv, yv = (t.to("cuda") for t in (x, y, xv, yv))
    lr = 3e-3 * math.sqrt(max(batch, 256) / 256)
    module = ClassifierModule(
        model, lr=lr, max_epochs=3, threads=threads, seed=42, micro_batch=batch if k > 1 else None
    )
    tcfg = trainer_cfg(accelerator, precision, threads)
    trainer = build_trainer(tcfg, callbacks=[PlainProgress(check_every=10**9)], default_root_dir="/tmp/gpu-check")
    train = TensorBatches(x, y, batch * k, shuffle=True, seed=42)
    val = TensorBatches(xv, yv, max(batch, 4096), shuffle=False)
    if accelerator == "gpu":
        torch.cuda.synchronize()
    t = time.perf_counter()
    trainer.fit(module, train, val)
    if accelerator == "gpu":
        torch.cuda.synchronize()
    fit = time.perf_counter() - t
    out = {
        "variant": name,
        "accelerator": accelerator,
        "precision": resolve_precision(precision, accelerator),
        "threads": torch.get_num_threads(),
        "steps_per_call": k,
        "batch": batch,
        "data_on_gpu": resident,
        "fit_seconds": round(fit, 3),
        "samples_per_second": round(len(x) * 3 / fit),
        "val_acc": round(float(trainer.callback_metrics["val_acc"]), 4),
        "device": torch.cuda.get_device_name(0) if accelerator == "gpu" else "cpu",
    }
    print(json.dumps(out), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--cpu-only", action="store_true", help="skip the GPU variants (a dry run of the script)")
    args = ap.parse_args()
    import torch

    arrays = data()
    gpu = torch.cuda.is_available() and not args.cpu_only
    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}", flush=True)
    variants = []
    if gpu:
        # the train stage's own decision for trainer=gpu on this machine: the repository's conf/
        from aiinfra.runner import load_config
        from aiinfra.training.plan import plan_training

        args.json = args.json.resolve() if args.json else None  # load_config changes to the repository root
        plan = plan_training(load_config(["trainer=gpu"]), train_rows=len(arrays[0]), n_features=16)
        k_gpu = plan.steps_per_call
        print(f"train stage on this machine: trainer=gpu runs {k_gpu} batch(es) per Lightning step", flush=True)
        variants += [
            ("gpu-warmup", "gpu", "auto-mixed", 0, 1, 512, False),  # CUDA context, kernels: not reported
            ("gpu", "gpu", "auto-mixed", 0, k_gpu, 512, False),  # trainer=gpu as shipped
            # experiments, one change at a time (the stage uses none of them)
            ("gpu-bf16-k16", "gpu", "auto-mixed", 0, 16, 512, False),
            ("gpu-bf16-k16-data-on-gpu", "gpu", "auto-mixed", 0, 16, 512, True),
            ("gpu-bf16-k1-data-on-gpu", "gpu", "auto-mixed", 0, 1, 512, True),
            ("gpu-fp32-k16", "gpu", None, 0, 16, 512, False),
            ("gpu-b4096", "gpu", "auto-mixed", 0, k_gpu, 4096, False),
        ]
    variants += [("cpu-k16", "cpu", None, 1, 16, 512, False)]
    results = [one(*v, arrays) for v in variants]
    results = [r for r in results if r["variant"] != "gpu-warmup"]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    cpu = next(r for r in results if r["variant"] == "cpu-k16")
    for r in results:
        print(
            f"{r['variant']:<16} fit {r['fit_seconds']:7.2f} s  {r['samples_per_second']:>10,} samples/s  "
            f"val_acc {r['val_acc']:.4f}  x{r['samples_per_second'] / cpu['samples_per_second']:.2f} of cpu-k16"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
