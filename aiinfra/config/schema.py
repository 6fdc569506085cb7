"""Structured-config schemas of the top-level config sections and the built-in components.

Plain dataclasses, validated through OmegaConf (``OmegaConf.structured``): importing this module
is cheap, so a typo fails in a fraction of a second, long before torch is imported.
Component schemas are found through the component registry (``schema=`` of each registration),
so a plugin's components are validated the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

# ---------------------------------------------------------------------------------------------
# top-level sections


@dataclass
class PathsConfig:
    data: str = "data"  # raw data (DVC-tracked)
    prepared: str = "data/prepared"  # train/val/test/reference Parquet + meta.json
    models: str = "models"  # trained model directory (DVC out)
    reports: str = "reports"  # drift reports, model cards
    plots: str = "plots"  # DVC plot data
    logs: str = "logs"  # prediction log, audit log, alerts
    metrics: str = "metrics.json"  # DVC metrics file
    # labelled production windows (features + target) that ``prepare`` adds to the source data:
    # the monitor's retrain policy exports drifted windows here (with labels from monitor.feedback)
    feedback: str = "data/feedback"


@dataclass
class SplitConfig:
    val: float = 0.15
    test: float = 0.15
    stratify: bool = True


@dataclass
class ReferenceConfig:
    """The reference sample kept for drift monitoring (drawn from the training split)."""

    rows: int = 10000


@dataclass
class DataConfig:
    """How training batches are fed (the fast in-memory path by default)."""

    # null: auto = train rows // 32, clamped to [32, 512]: 512 on large data (per-step overhead,
    # measured: docs/training.md), yet a dozen or more steps per epoch on a 400-row dataset
    batch_size: Optional[int] = None
    # with the automatic batch size above 256: model.lr x sqrt(batch / 256) (Adam's square-root rule)
    scale_lr: bool = True
    loader: str = "auto"  # auto | memory | stream
    num_workers: int = 0
    stream_chunk_rows: int = 65536


@dataclass
class TrackingConfig:
    uri: str = "sqlite:///mlflow.db"  # relative sqlite paths are resolved against the project root
    experiment: str = "aiinfra"
    artifact_location: str = "mlartifacts"  # only used when the experiment is created
    system_metrics: bool = False
    run_name: Optional[str] = None


@dataclass
class GateConfig:
    """A new model gets the alias only if it passes this gate."""

    metric: str = "test_accuracy"
    min: Optional[float] = None  # absolute floor, None: no floor
    mode: str = "max"  # max: higher is better, min: lower is better
    compare_to_champion: bool = True  # must be at least as good as the current alias holder
    tolerance: float = 0.0


@dataclass
class RegisterConfig:
    model_name: str = "aiinfra-model"
    alias: str = "champion"
    gate: GateConfig = field(default_factory=GateConfig)


@dataclass
class EvaluateConfig:
    split: str = "test"


@dataclass
class SecurityConfig:
    # Extra ``_target_`` import paths a config may instantiate, beyond registered components.
    allowed_targets: list[str] = field(default_factory=list)


@dataclass
class RootConfig:
    project: str = "aiinfra"
    seed: int = 42
    paths: PathsConfig = field(default_factory=PathsConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    # component groups: validated against the schema of the registered component they name
    source: Any = None
    model: Any = None
    trainer: Any = None
    server: Any = None
    monitor: Any = None


#: config groups that select a component: group name -> component kind
COMPONENT_GROUPS = {
    "source": "source",
    "model": "model",
    "trainer": "trainer",
    "server": "server",
    "monitor": "monitor",
}

# ---------------------------------------------------------------------------------------------
# built-in sources


@dataclass
class SourceConfig:
    """Fields every tabular source has."""

    type: str = MISSING
    target: str = "target"
    # Expected columns and dtypes ("float", "int", "str", "bool", "category"). None: infer.
    columns: Optional[dict[str, str]] = None
    # Columns allowed to contain NaN (all others must not).
    allow_nan: list[str] = field(default_factory=list)


@dataclass
class SklearnSourceConfig(SourceConfig):
    dataset: str = "breast_cancer"  # breast_cancer | wine | digits | iris


@dataclass
class FileSourceConfig(SourceConfig):
    path: str = MISSING


@dataclass
class SyntheticSourceConfig(SourceConfig):
    rows: int = 20000
    features: int = 16
    classes: int = 2
    informative: int = 8
    seed: int = 0


# ---------------------------------------------------------------------------------------------
# built-in models and trainer


@dataclass
class MLPConfig:
    type: str = "mlp"
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.1
    lr: float = 0.003
    weight_decay: float = 0.0
    scheduler: Optional[str] = None  # None | cosine | step | plateau


@dataclass
class CNNConfig:
    type: str = "cnn"
    channels: int = 16
    hidden: int = 64
    dropout: float = 0.1
    lr: float = 0.003
    weight_decay: float = 0.0
    image_shape: list[int] = field(default_factory=lambda: [1, 8, 8])
    scheduler: Optional[str] = None


@dataclass
class EarlyStoppingConfig:
    enabled: bool = True
    monitor: str = "val_loss"
    mode: str = "min"
    patience: int = 5


@dataclass
class CheckpointConfig:
    enabled: bool = True
    dir: str = "checkpoints"
    every_n_epochs: int = 1
    resume: Optional[str] = None  # "last", or a checkpoint path


@dataclass
class LightningTrainerConfig:
    type: str = "lightning"
    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: Optional[str] = None  # None: 32-true; "bf16-mixed", "16-mixed" on GPUs
    max_epochs: int = 20
    min_epochs: int = 1
    gradient_clip_val: Optional[float] = None
    gradient_clip_algorithm: str = "norm"  # norm | value
    accumulate_grad_batches: int = 1
    check_val_every_n_epoch: int = 1
    num_sanity_val_steps: int = 0  # Lightning's default is 2; the first epoch validates anyway
    model_summary: bool = False
    deterministic: bool = False
    # torch intra-op threads per process; 0 keeps torch's default (one per core). One thread is
    # as fast as two for small models on an idle 2-core machine and many times faster under
    # contention (measured: README, training section).
    threads: int = 1
    # Optimizer steps per Lightning training step with the in-memory loader: Lightning's own work
    # per step (~0.85 ms here, as much as a small MLP's math) is paid once per this many batches.
    # Applies without LR scheduler, gradient clipping, accumulation and mixed precision (those
    # keep Lightning's automatic optimization, one batch per step). 1: always automatic.
    steps_per_call: int = 1
    log_every_n_steps: int = 50
    limit_train_batches: Optional[float] = None
    limit_val_batches: Optional[float] = None
    progress_bar: Optional[bool] = None  # None: a bar on a terminal, plain lines otherwise
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
