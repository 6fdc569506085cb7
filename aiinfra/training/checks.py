"""The trainer rule of sweeps. It needs no torch, but it needs to know the run is a sweep job, so it
is not a schema ``check``: the runner applies it to every job before the first one starts, and
each job again with the launcher Hydra actually runs it with."""

from __future__ import annotations

from typing import Any

from aiinfra.errors import ConfigError


def check_sweep_trainer(tcfg: Any, launcher: str | None = None) -> None:
    """Lightning's ``ddp`` re-launches the command line in each child process, which re-runs the
    whole Hydra sweep there; ``ddp_spawn`` (conf/trainer/ddp.yaml) does not. Under the submitit
    SLURM launcher SLURM starts one task per device and Lightning re-launches nothing, so ``ddp``
    is fine there. ``launcher``: the Hydra launcher's name or target, if known."""
    if launcher and "submitit_slurm" in launcher.lower().replace("slurmlauncher", "submitit_slurm"):
        return
    if tcfg.strategy == "ddp":
        raise ConfigError(
            "trainer.strategy=ddp cannot run inside a Hydra sweep (-m): Lightning's ddp re-launches "
            "the command line, which re-runs the whole sweep in every child.",
            hint="use trainer.strategy=ddp_spawn for sweeps, or one launcher job per run",
        )
