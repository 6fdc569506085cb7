"""Structured-config schemas of the top-level config sections and the built-in components.

Plain dataclasses, validated through OmegaConf (``OmegaConf.structured``): importing this module
is cheap, so a typo fails in a fraction of a second, long before torch is imported. Enumerated
options are ``StrEnum`` classes (a member equals its string: ``cfg.data.loader == "auto"``); ranges
and cross-field rules are each dataclass's ``check()`` (:mod:`aiinfra.config.checks`).
Component schemas are found through the component registry (``schema=`` of each registration):
the built-in ones live beside their components (``aiinfra/data/schema.py``,
``aiinfra/models/schema.py``, ``aiinfra/training/schema.py``, ``aiinfra/serving/schema.py``,
``aiinfra/monitoring/schema.py``), and a plugin's components are validated the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from aiinfra.config.checks import at_least, fail, require
from aiinfra.data.schema import FeaturesConfig
from aiinfra.governance.schema import AuditConfig, BudgetConfig, CostsConfig, SigningConfig
from aiinfra.storage.schema import StorageConfig
from aiinfra.storage.urls import is_remote, redact

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


class SplitMethod(StrEnum):
    """How rows are assigned to train/val/test: ``shuffle`` (scikit-learn's seeded, stratified
    shuffle of the whole table), ``hash`` (a seeded hash of ``split.key``, or of the row's file and
    position: a row's split never changes when rows are added), ``auto`` (``shuffle`` for
    ``prepare.engine=memory``, ``hash`` for ``stream`` and ``ray``)."""

    auto = "auto"
    shuffle = "shuffle"
    hash = "hash"


@dataclass
class SplitConfig:
    val: float = 0.15
    test: float = 0.15
    stratify: bool = True  # shuffle only: the hash split is stratified in expectation
    method: SplitMethod = SplitMethod.auto
    key: str | None = None  # hash: the column whose value decides a row's split (null: file + row position)

    def check(self) -> None:
        for key in ("val", "test"):
            require(0.0 < getattr(self, key) < 1.0, key, f"must be a share between 0 and 1, got {getattr(self, key)!r}")
        require(
            self.val + self.test < 1.0,
            "test",
            f"val + test must leave rows to train on, got {self.val} + {self.test}",
            hint="for example split.val=0.15 split.test=0.15",
        )


@dataclass
class ReferenceConfig:
    """The reference sample kept for drift monitoring (drawn from the training split)."""

    rows: int = 10000

    def check(self) -> None:
        at_least(self, 1, "rows")


class PrepareEngine(StrEnum):
    """How ``prepare`` reads and writes (docs/scale.md): ``memory`` reads the table into pandas
    (exact statistics, stratified shuffle split); ``stream`` reads record batches and writes
    partitioned Parquet, memory flat in rows; ``ray`` runs the streaming prepare on a Ray cluster
    with Ray Data and writes the same files."""

    memory = "memory"
    stream = "stream"
    ray = "ray"


@dataclass
class PrepareConfig:
    engine: PrepareEngine = PrepareEngine.memory
    batch_rows: int = 65536  # rows per record batch read (stream, ray)
    part_rows: int = 1_000_000  # rows per written Parquet file of a split (stream, ray)
    # train rows drawn (by hash: the same rows on any engine) for type inference and medians;
    # counts, null shares, categories, ranges, means and variances are exact over every train row
    sample_rows: int = 200_000
    ray_address: str | None = None  # engine=ray: a cluster (ray://host:10001); null: RAY_ADDRESS or a local one
    ray_cpus: int | None = None  # engine=ray, local instance only: its logical CPUs (null: the machine's)

    def check(self) -> None:
        at_least(self, 1, "batch_rows", "part_rows", "sample_rows", "ray_cpus")


class Loader(StrEnum):
    """How training batches are fed: ``auto`` picks ``memory`` when the data fits, else ``stream``."""

    auto = "auto"
    memory = "memory"
    stream = "stream"


@dataclass
class DataConfig:
    """How training batches are fed (the fast in-memory path by default)."""

    # null: auto = train rows // 32, clamped to [32, 512]: 512 on large data (per-step overhead,
    # measured: docs/training.md), yet a dozen or more steps per epoch on a 400-row dataset
    batch_size: int | None = None
    # with the automatic batch size above 256: model.lr x sqrt(batch / 256) (Adam's square-root rule)
    scale_lr: bool = True
    loader: Loader = Loader.auto
    num_workers: int = 0
    stream_chunk_rows: int = 65536

    def check(self) -> None:
        at_least(self, 1, "batch_size", "stream_chunk_rows")
        at_least(self, 0, "num_workers")


class GateMode(StrEnum):
    """Which way the gate metric is better: ``max`` (accuracy) or ``min`` (a loss, RMSE)."""

    max = "max"
    min = "min"


@dataclass
class TrackingConfig:
    uri: str = "sqlite:///mlflow.db"  # relative sqlite paths are resolved against the project root
    experiment: str = "aiinfra"
    artifact_location: str = "mlartifacts"  # only used when the experiment is created
    system_metrics: bool = False
    run_name: str | None = None
    # how long a locked store ("database is locked") is retried, with backoff, before one clear
    # error (AIINFRA_TRACKING_RETRY_S overrides it for one process)
    retry_s: float = 120.0

    def check(self) -> None:
        at_least(self, 0, "retry_s")


@dataclass
class GateConfig:
    """A new model gets the alias only if it passes this gate."""

    metric: str = "test_accuracy"
    min: float | None = None  # absolute floor, None: no floor
    mode: GateMode = GateMode.max
    compare_to_champion: bool = True  # must be at least as good as the current alias holder
    tolerance: float = 0.0

    def check(self) -> None:
        at_least(self, 0, "tolerance")


@dataclass
class AliasPolicy:
    """Who may move an alias: with ``approvers`` set, the alias moves only when
    ``register.approved_by`` (given on the command line) is one of them; recorded in the audit log."""

    approvers: list[str] = field(default_factory=list)


@dataclass
class RegisterConfig:
    model_name: str = "aiinfra-model"
    alias: str = "champion"
    gate: GateConfig = field(default_factory=GateConfig)
    # alias name -> its policy, e.g. {production: {approvers: [alice, bob]}}
    policies: dict[str, AliasPolicy] = field(default_factory=dict)
    # the approver of this promotion: `aiinfra register register.approved_by=alice`
    approved_by: str | None = None


class EvalSplit(StrEnum):
    """The prepared split that ``evaluate`` scores."""

    train = "train"
    val = "val"
    test = "test"


@dataclass
class EvaluateConfig:
    split: EvalSplit = EvalSplit.test


@dataclass
class SecurityConfig:
    # Deprecated, no effect: aiinfra builds only registered components and instantiates no
    # ``_target_`` from config. Kept so that existing configs still load (with a warning).
    allowed_targets: list[str] = field(default_factory=list)


@dataclass
class RootConfig:
    project: str = "aiinfra"
    seed: int = 42
    paths: PathsConfig = field(default_factory=PathsConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    # how prepare reads, splits and writes (docs/scale.md); where object stores are (storage)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    # column types, the task and the preprocessing prepare fits (aiinfra/data/schema.py, docs/features.md)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    # trust and cost (aiinfra/governance/schema.py, docs/governance.md)
    costs: CostsConfig = field(default_factory=CostsConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    signing: SigningConfig = field(default_factory=SigningConfig)
    # component groups: validated against the schema of the registered component they name
    source: Any = None
    model: Any = None
    trainer: Any = None
    server: Any = None
    monitor: Any = None
    # selected only by `aiinfra deploy <target>` (+deploy=<target>): absent from the pipeline's config
    deploy: Any = None

    def check(self) -> None:
        if self.prepare.engine != PrepareEngine.memory and self.split.method == SplitMethod.shuffle:
            fail(
                "split.method",
                f"prepare.engine={self.prepare.engine} splits by hash (a shuffle needs the whole table in memory)",
                hint="split.method=hash (or auto), or prepare.engine=memory",
            )
        if self.split.key is not None and self.split.method == SplitMethod.shuffle:
            fail("split.key", "is used by split.method=hash only", hint="split.method=hash, or leave split.key unset")
        self._check_urls()

    def _check_urls(self) -> None:
        """No URL where only a local directory works (it would become a local ``./s3:/...``), and
        no user or password in any URL (it would reach logs, run parameters and meta.json)."""
        local_only = {
            "paths.models": self.paths.models,
            "paths.logs": self.paths.logs,
            "server.log_spool_dir": getattr(self.server, "log_spool_dir", None),
            "monitor.report_dir": getattr(self.monitor, "report_dir", None),
        }
        for key, value in local_only.items():
            if value and is_remote(str(value)):
                fail(
                    key,
                    f"must be a local directory, got the URL {redact(str(value))}",
                    hint=f"settings that take a URL: {', '.join(URL_SETTINGS)}",
                )
        from aiinfra.config.typed import string_settings  # omegaconf: loaded by validation already

        for key, value in string_settings(self):
            if key == "storage.endpoint_url" or "://" not in value or not is_remote(value):
                continue
            scheme = value.split("://", 1)[0].lower()
            if "sql" in scheme or "+" in scheme or scheme == "oracle":
                continue  # a database URI (tracking.uri): its password is the database driver's way
            try:
                parts = urlsplit(value)
                userinfo = bool(parts.username or parts.password)
            except ValueError:
                userinfo = "@" in value.split("://", 1)[1].split("/", 1)[0]
            if userinfo:
                fail(
                    key,
                    "must not carry a user or password (credentials come from the environment)",
                    hint="put the keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or a profile) "
                    "and give the URL without them",
                )


#: the settings that take an object-store URL (docs/scale.md)
URL_SETTINGS = (
    "source.path",
    "paths.data",
    "paths.prepared",
    "paths.feedback",
    "server.log_dir",
    "server.feedback_dir",
    "server.model_uri",
    "monitor.current",
    "monitor.feedback",
    "tracking.artifact_location",
)


#: config groups that select a component: group name -> component kind
COMPONENT_GROUPS = {
    "source": "source",
    "model": "model",
    "trainer": "trainer",
    "server": "server",
    "monitor": "monitor",
    "deploy": "deploy",
}


# A plugin source subclasses SourceConfig; it lived here before aiinfra 0.2 (kept importable).
from aiinfra.data.schema import SourceConfig  # noqa: E402,F401
