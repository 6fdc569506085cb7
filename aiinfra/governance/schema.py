"""Config schemas of trust and cost: the rate card, stage budgets, the audit trail, model signing.

The top-level sections ``costs``, ``budget``, ``audit`` and ``signing`` of ``conf/config.yaml``
(docs/governance.md). Import-light: validation imports this before torch is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from aiinfra.config.checks import at_least, require

#: the pipeline's stages (aiinfra.runner.STAGES, which the application layer owns; a test keeps them equal)
STAGE_NAMES = ("prepare", "train", "evaluate", "register", "serve", "monitor")


@dataclass
class RateCard:
    """Prices that turn measured resources into money (OpenCost-style: per resource-hour)."""

    currency: str = "USD"
    cpu_hour: float = 0.0316  # per CPU-hour (one core busy for an hour; user + system time)
    memory_gb_hour: float = 0.0042  # per GiB-hour of peak resident memory held for the stage's wall time
    # per GPU-hour by device name (torch.cuda.get_device_name, e.g. "NVIDIA H200"); "default" for any other
    gpu_hour: dict[str, float] = field(default_factory=lambda: {"default": 2.5})

    def check(self) -> None:
        at_least(self, 0, "cpu_hour", "memory_gb_hour")
        require(bool(self.currency), "currency", "must name a currency, e.g. USD")
        for device, price in self.gpu_hour.items():
            require(price >= 0, f"gpu_hour.{device}", f"must be >= 0, got {price!r}")


@dataclass
class CostsConfig:
    rates: RateCard = field(default_factory=RateCard)
    # OpenCost-style allocation labels recorded with every stage's cost (team, env, owner, ...)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class StageBudget:
    max_cost: float | None = None  # in costs.rates.currency
    max_cpu_hours: float | None = None

    def check(self) -> None:
        for key in ("max_cost", "max_cpu_hours"):
            value = getattr(self, key)
            require(value is None or value > 0, key, f"must be > 0 or null (no limit), got {value!r}")


@dataclass
class BudgetConfig(StageBudget):
    """A limit for the stage being run (``aiinfra train budget.max_cost=0.50``); ``stages.<name>``
    sets one stage's own limit. ``train`` stops cleanly when it would pass it, keeping its
    checkpoint, and names the figure."""

    stages: dict[str, StageBudget] = field(default_factory=dict)

    def for_stage(self, stage: str) -> StageBudget:
        own = self.stages.get(stage)
        if own is None:
            return StageBudget(self.max_cost, self.max_cpu_hours)
        return StageBudget(
            own.max_cost if own.max_cost is not None else self.max_cost,
            own.max_cpu_hours if own.max_cpu_hours is not None else self.max_cpu_hours,
        )

    def check(self) -> None:
        super().check()
        for name in self.stages:
            require(name in STAGE_NAMES, f"stages.{name}", f"is not a stage; stages: {', '.join(STAGE_NAMES)}")


class QualityAction(StrEnum):
    """What ``prepare`` does when the data's profile changed since the previous run."""

    warn = "warn"  # a warning naming each change, and the ledger records it
    fail = "fail"  # one error naming each change; nothing is written
    off = "off"  # no comparison (the profile is still recorded)


@dataclass
class AuditConfig:
    # every stage run appended to <paths.logs>/ledger.jsonl (hash-chained; `aiinfra audit verify`)
    ledger: bool = True
    data_quality: QualityAction = QualityAction.warn
    max_null_increase: float = 0.05  # a column's null share rising by more than this is a change

    def check(self) -> None:
        require(
            0 <= self.max_null_increase <= 1,
            "max_null_increase",
            f"must be a share between 0 and 1, got {self.max_null_increase!r}",
        )


class SigningMode(StrEnum):
    """What ``serve`` and ``register`` do with a model directory's signature."""

    require = "require"  # refuse an unsigned model, a changed file or an untrusted signer
    warn = "warn"  # load it, with a warning naming what is wrong
    off = "off"  # neither sign nor check


@dataclass
class SigningConfig:
    mode: SigningMode = SigningMode.warn
    # Ed25519 private key (PEM, or base64 of the 32 raw bytes) of the signer: train signs with it
    key_env: str = "AIINFRA_SIGNING_KEY"
    # public keys trusted to sign models: PEM files, or base64 of the 32 raw bytes (not secret)
    trusted_keys: list[str] = field(default_factory=list)
    # more trusted public keys from the environment (';'-separated, same forms)
    trusted_keys_env: str = "AIINFRA_TRUSTED_KEYS"

    def check(self) -> None:
        require(bool(self.key_env), "key_env", "must name an environment variable, e.g. AIINFRA_SIGNING_KEY")
        for i, entry in enumerate(self.trusted_keys):
            require(
                _public_key_form(str(entry)),
                f"trusted_keys[{i}]",
                "is neither base64 of a 32-byte Ed25519 public key nor a .pem/.pub file "
                "(`aiinfra keys generate` prints both forms)",
            )


def _public_key_form(entry: str) -> bool:
    """Whether ``entry`` looks like a trusted key: a PEM file's path (read when a model is verified,
    where it may exist only in the deployment) or base64 of 32 raw bytes."""
    import base64
    import binascii

    entry = entry.strip()
    if entry.endswith((".pem", ".pub")):
        return True
    try:
        return len(base64.b64decode(entry, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False
