"""A stage budget inside the training loop: stop cleanly before ``budget.max_cpu_hours`` or
``budget.max_cost`` is passed.

:class:`BudgetStop` reads the stage's resources after every Lightning step (``getrusage`` and
``/proc/self/io``: tens of microseconds, measured in ``bench/cost_overhead_bench.py``), prices
them at the rate card, and sets ``trainer.should_stop`` when the figure has passed the limit or
the next step, at the pace of the last one, would pass it. Lightning then validates the partial
epoch and ``ModelCheckpoint`` writes ``last.ckpt``; the train stage raises
:class:`~aiinfra.errors.BudgetExceeded` naming the figure (:func:`stop_message`), so
``trainer.checkpoint.resume=last`` continues where the budget stopped it.

The outcome travels in ``trainer.callback_metrics`` (``budget.*`` keys, set at the end of fit),
the one channel a ``ddp_spawn`` worker hands back to the process that started it. With several
processes each one measures itself and the figure is its own usage times the world size (an
estimate: ranks do the same work); the decision is reduced across ranks every
``check_every`` steps so every rank stops at the same step.

Only ``train`` (and so each trial of ``aiinfra tune``) enforces a budget inside its loop; the
other stages are recorded and priced, not stopped (docs/costs.md).
"""

from __future__ import annotations

import os
from typing import Any

import lightning as L
import torch

from aiinfra.governance.resources import ResourceMeter, Usage, price

#: ``trainer.callback_metrics`` keys of a budget stop (read by :func:`outcome`)
STOPPED, WHICH, CPU_HOURS, COST, EPOCH, BATCH = (
    "budget.stopped",
    "budget.which",
    "budget.cpu_hours",
    "budget.cost",
    "budget.epoch",
    "budget.batch",
)
#: the limits, in the order of ``budget.which``
LIMITS = ("max_cpu_hours", "max_cost")


def _scaled(usage: Usage, world: int, before: Usage | None) -> Usage:
    """This process's usage as the stage's: times ``world`` processes, plus what the process that
    spawned this one used before it did (``before``; None when the stage runs in this process)."""
    wall = usage.wall_s + (before.wall_s if before else 0.0)
    return Usage(
        wall_s=wall,
        cpu_user_s=usage.cpu_user_s * world + (before.cpu_user_s if before else 0.0),
        cpu_system_s=usage.cpu_system_s * world + (before.cpu_system_s if before else 0.0),
        peak_rss_bytes=max(usage.peak_rss_bytes, before.peak_rss_bytes if before else 0),
        read_bytes=usage.read_bytes * world,
        write_bytes=usage.write_bytes * world,
        gpu_s=usage.gpu_s * world,
        gpu_peak_bytes=usage.gpu_peak_bytes,
        gpu_device=usage.gpu_device,
    )


class BudgetStop(L.Callback):
    """``budget``: a :class:`~aiinfra.governance.schema.StageBudget`; ``rates``: the rate card;
    ``meter``: the stage's :class:`ResourceMeter` (started when the stage started)."""

    def __init__(self, budget: Any, rates: Any, meter: ResourceMeter, *, check_every: int = 1):
        self.limits = (budget.max_cpu_hours, budget.max_cost)
        self.rates = rates
        self.meter = meter
        self.check_every = max(1, int(check_every))
        self._pid = os.getpid()
        self._before: Usage | None = None  # set in a spawned worker (see on_fit_start)
        self._previous: tuple[float, float] | None = None  # (CPU-hours, cost) at the previous check
        self._stop: tuple[int, float, float, int, int] | None = None  # which, cpu_hours, cost, epoch, batch
        self.checks = 0

    @property
    def active(self) -> bool:
        return any(limit is not None for limit in self.limits)

    def __getstate__(self) -> dict[str, Any]:
        # pickled into a ddp_spawn worker: it carries what the stage used so far in this process
        state = dict(self.__dict__)
        state["_before"] = self.meter.usage()
        return state

    def on_fit_start(self, trainer, pl_module) -> None:
        if os.getpid() != self._pid:  # a spawned worker: its own counters start at zero here
            self.meter = ResourceMeter()
            self._pid = os.getpid()
        else:
            self._before = None

    def figures(self, world: int = 1) -> tuple[float, float]:
        """(CPU-hours, cost) of the stage so far."""
        usage = _scaled(self.meter.usage(), world, self._before) if world > 1 or self._before else self.meter.usage()
        return usage.cpu_hours, price(usage, self.rates)["total"]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._stop is not None or not self.active or batch_idx % self.check_every:
            return
        self.checks += 1
        world = max(1, int(trainer.world_size))
        now = self.figures(world)
        previous = self._previous or now
        self._previous = now
        over = None
        for which, (value, before, limit) in enumerate(zip(now, previous, self.limits, strict=True)):
            # passed, or the next step at the pace of the last one would pass it
            if limit is not None and value + max(0.0, value - before) > limit:
                over = which
                break
        stop = over is not None
        if world > 1:  # one decision for every rank, or the ranks' collectives would hang
            stop = bool(trainer.strategy.reduce_boolean_decision(stop, all=False))
        if not stop:
            return
        self._stop = (over if over is not None else 0, now[0], now[1], trainer.current_epoch, batch_idx + 1)
        trainer.should_stop = True
        # stop at this step even before trainer.min_epochs: the budget is a limit, not advice
        trainer.fit_loop.min_epochs = None
        trainer.fit_loop.epoch_loop.min_steps = None

    def on_train_end(self, trainer, pl_module) -> None:
        if self._stop is None:
            return
        for key, value in zip((WHICH, CPU_HOURS, COST, EPOCH, BATCH), self._stop, strict=True):
            trainer.callback_metrics[key] = torch.tensor(float(value), dtype=torch.float64)
        trainer.callback_metrics[STOPPED] = torch.tensor(1.0)


def outcome(trainer: Any) -> dict[str, Any] | None:
    """How the budget stopped this fit (``which`` limit, ``cpu_hours``, ``cost``, ``epoch``,
    ``batch``), or None when it did not; the ``budget.*`` keys are removed from the metrics."""
    metrics = trainer.callback_metrics
    if STOPPED not in metrics:
        return None
    out = {
        "which": LIMITS[int(metrics[WHICH])],
        "cpu_hours": float(metrics[CPU_HOURS]),
        "cost": float(metrics[COST]),
        "epoch": int(metrics[EPOCH]),
        "batch": int(metrics[BATCH]),
    }
    for key in (STOPPED, WHICH, CPU_HOURS, COST, EPOCH, BATCH):
        metrics.pop(key, None)
    return out


def limit_key(budget_cfg: Any, stage: str, which: str) -> str:
    """The config key that set the limit: ``budget.stages.<stage>.<which>`` or ``budget.<which>``."""
    own = budget_cfg.stages.get(stage)
    if own is not None and getattr(own, which) is not None:
        return f"budget.stages.{stage}.{which}"
    return f"budget.{which}"


def stop_message(stop: dict[str, Any], *, key: str, limit: float, currency: str, stage: str = "train") -> str:
    """``train stopped by its budget in epoch 3 (step 12): 0.0021 CPU-hours used, over
    budget.max_cpu_hours=0.002 (cost so far ...)``"""
    figure = stop["cpu_hours"] if stop["which"] == "max_cpu_hours" else stop["cost"]
    used = f"{figure:.4g} CPU-hours" if stop["which"] == "max_cpu_hours" else f"{figure:.4g} {currency}"
    verb = "over" if figure > limit else "the next step would pass"
    other = (
        f"cost so far {stop['cost']:.4g} {currency}"
        if stop["which"] == "max_cpu_hours"
        else f"{stop['cpu_hours']:.4g} CPU-hours so far"
    )
    return (
        f"{stage} stopped by its budget in epoch {stop['epoch'] + 1} (step {stop['batch']}): {used} used, "
        f"{verb} {key}={limit:g} ({other})"
    )
