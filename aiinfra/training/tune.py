"""``aiinfra tune``: hyperparameter search with Optuna, each trial a child run in MLflow.

    aiinfra tune --trials 20 'model.lr=tag(log, interval(1e-4, 1e-1))' 'model.hidden=choice(32, 64, 128)' \\
        'model.layers=range(1, 4)' trainer.max_epochs=10

The search space uses Hydra's sweep syntax (as the Hydra Optuna sweeper does), but Optuna is
called directly: the sweeper pins optuna<3.

  choice(a, b, ...)               categorical
  range(lo, hi[, step])           integers lo..hi-1 (step 1 unless given)
  interval(lo, hi)                uniform float
  tag(log, interval(lo, hi))      log-uniform float (tag(log, range(...)): log-uniform int)

Other overrides are fixed for every trial. Each trial trains in this process with its own
``paths.models``/``paths.plots``/checkpoint directory under ``.aiinfra/tune/<study>/trial-<n>``;
the study is a parent MLflow run and every trial a child run of it. The best value, its
overrides and its model directory are printed and written to ``<paths.reports>/best_params.yaml``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from aiinfra import runner
from aiinfra.errors import BudgetExceeded, ConfigError
from aiinfra.tracking.mlflow_setup import setup_mlflow

# hydra, optuna, MLflow and torch (through aiinfra.tracking.run) are imported where they are used:
# `aiinfra tune --help` and a bad search space answer at once
log = logging.getLogger("aiinfra.tune")

#: sweep functions that make a parameter searched rather than fixed
SEARCH_FUNCTIONS = ("choice(", "range(", "interval(", "tag(")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aiinfra tune", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("overrides", nargs="*", help="search space (choice/range/interval/tag) and fixed overrides")
    p.add_argument("--trials", type=int, default=10, help="number of trials (default 10)")
    p.add_argument(
        "--metric",
        default=None,
        help="metric to optimise, from the trained run (default val_acc; val_rmse for regression data)",
    )
    p.add_argument(
        "--direction",
        choices=["maximize", "minimize"],
        default=None,
        help="default: minimize for *loss*, *rmse*, *mae*, else maximize",
    )
    p.add_argument("--study", default=None, help="study name (default tune-<timestamp>)")
    p.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL to persist/resume a study, e.g. sqlite:///optuna.db (default: in memory)",
    )
    p.add_argument("--sampler", choices=["tpe", "random"], default="tpe")
    p.add_argument("--seed", type=int, default=None, help="sampler seed (default: the config's seed)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def parse_space(overrides: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Split overrides into {key: optuna distribution} and fixed overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space: dict[str, Any] = {}
    fixed: list[str] = []
    searched = [o for o in overrides if any(f in o for f in SEARCH_FUNCTIONS)]
    fixed = [o for o in overrides if o not in searched]
    try:
        parsed = OverridesParser.create().parse_overrides(searched)
    except Exception as exc:  # hydra's OverrideParseException
        raise ConfigError(
            f"cannot parse the search space: {exc}",
            hint="e.g. 'model.lr=tag(log, interval(1e-4, 1e-1))' 'model.hidden=choice(32,64)'",
        ) from None
    for ov in parsed:
        key, value = ov.get_key_element(), ov.value()
        log_scale = "log" in getattr(value, "tags", set())
        if isinstance(value, ChoiceSweep):
            space[key] = CategoricalDistribution(list(value.list))
        elif isinstance(value, RangeSweep):
            lo, hi, step = value.start, value.stop, value.step or 1
            if any(isinstance(v, float) for v in (lo, hi, step)):
                space[key] = FloatDistribution(float(lo), float(hi), log=log_scale)
            else:
                space[key] = IntDistribution(int(lo), int(hi) - 1, step=1 if log_scale else int(step), log=log_scale)
        elif isinstance(value, IntervalSweep):
            space[key] = FloatDistribution(float(value.start), float(value.end), log=log_scale)
        else:
            raise ConfigError(
                f"'{ov.input_line}' is not a search dimension",
                hint="use choice(...), range(lo, hi), interval(lo, hi) or tag(log, ...)",
            )
    if not space:
        raise ConfigError(
            "nothing to search: no choice(...), range(...) or interval(...) override given",
            hint="e.g. aiinfra tune 'model.hidden=choice(32,64)' --trials 4",
        )
    return space, fixed


def _suggest(trial: Any, key: str, dist: Any) -> Any:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(key, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(key, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(key, dist.low, dist.high, log=dist.log)


def _value_override(key: str, value: Any) -> str:
    return f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv if argv is not None else sys.argv[1:])
    # both no-ops under the aiinfra CLI, which set them up already; needed for `python -m aiinfra.training.tune`
    runner.setup_environment()
    runner.setup_logging(args.verbose)
    return runner.report_errors(lambda: _tune(args))


def _default_metric(cfg) -> str:
    """val_acc, or val_rmse when the prepared data is a regression (no val_acc there)."""
    from aiinfra.data.prepared import META, PreparedData
    from aiinfra.storage import urls

    if not urls.isfile(urls.join(str(cfg.paths.prepared), META)):  # paths.prepared may be s3://
        return "val_acc"  # the first trial's train names the missing data
    return "val_rmse" if str(PreparedData.open(cfg.paths.prepared).task) == "regression" else "val_acc"


def _tune(args: argparse.Namespace) -> int:
    space, fixed = parse_space(args.overrides)
    base = runner.load_config(fixed)  # validates the fixed part (and chdirs to the project root)
    if args.metric is None:
        args.metric = _default_metric(base)
    direction = args.direction or ("minimize" if any(w in args.metric for w in ("loss", "rmse", "mae")) else "maximize")
    study_name = args.study or time.strftime("tune-%Y%m%d-%H%M%S")
    root = Path(".aiinfra") / "tune" / study_name

    import mlflow
    import optuna

    from aiinfra.tracking.run import PARENT_RUN_ENV

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = base.seed if args.seed is None else args.seed
    sampler = (
        optuna.samplers.RandomSampler(seed=seed) if args.sampler == "random" else optuna.samplers.TPESampler(seed=seed)
    )
    study = optuna.create_study(
        study_name=study_name,
        storage=args.storage,
        direction=direction,
        sampler=sampler,
        load_if_exists=args.storage is not None,
    )
    exp_id = setup_mlflow(base)
    trial_dirs: dict[int, Path] = {}

    def objective(trial: optuna.Trial) -> float:
        chosen = {key: _suggest(trial, key, dist) for key, dist in space.items()}
        out = root / f"trial-{trial.number}"
        trial_dirs[trial.number] = out
        overrides = [
            *fixed,
            *(_value_override(k, v) for k, v in chosen.items()),
            f"paths.models={out / 'models'}",
            f"paths.plots={out / 'plots'}",
            f"trainer.checkpoint.dir={out / 'checkpoints'}",
            f"++tracking.run_name={study_name}-{trial.number}",
        ]
        try:
            result = runner.run_stage("train", runner.load_config(overrides))
        except BudgetExceeded as exc:  # this trial passed its budget: pruned, the study goes on
            log.warning("trial %d: %s", trial.number, exc.message)
            raise optuna.TrialPruned(exc.message) from None
        if args.metric not in result:
            raise ConfigError(
                f"metric '{args.metric}' is not among the trained run's metrics "
                f"({', '.join(sorted(k for k, v in result.items() if isinstance(v, float)))})",
                hint="pass --metric val_loss, or val_acc (classification) or val_rmse / val_r2 (regression)",
            )
        value = float(result[args.metric])
        trial.set_user_attr("run_id", result.get("run_id"))
        log.info("trial %d: %s -> %s=%.4f", trial.number, chosen, args.metric, value)
        return value

    # The parent run is opened through the client, not mlflow.start_run: each trial's training
    # activates its own run in this thread, and MLflow allows one active run per thread.
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking.context.registry import resolve_tags

    client = mlflow.MlflowClient()
    parent_id = client.create_run(
        exp_id,
        run_name=study_name,
        tags=resolve_tags({"aiinfra.tune.metric": args.metric, "aiinfra.tune.direction": direction}),
    ).info.run_id
    client.log_batch(parent_id, params=[Param(f"space.{k}", str(v)[:500]) for k, v in space.items()])
    previous = os.environ.get(PARENT_RUN_ENV)
    os.environ[PARENT_RUN_ENV] = parent_id
    status = "FAILED"
    try:
        # AiinfraErrors (a bad override) stop the study; anything else fails just that trial
        study.optimize(objective, n_trials=args.trials, catch=(RuntimeError, ValueError, FloatingPointError))
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not done:
            raise ConfigError("no trial completed", hint="see the errors above")
        best = study.best_trial
        now_ms = int(time.time() * 1000)
        client.log_batch(
            parent_id,
            metrics=[Metric(f"best_{args.metric}", float(best.value), now_ms, 0)],
            params=[Param(f"best.{k}", str(v)) for k, v in best.params.items()],
            tags=[RunTag("aiinfra.tune.best_run_id", str(best.user_attrs.get("run_id")))],
        )
        status = "FINISHED"
    finally:
        client.set_terminated(parent_id, status=status)
        if previous is None:
            os.environ.pop(PARENT_RUN_ENV, None)
        else:
            os.environ[PARENT_RUN_ENV] = previous

    best_overrides = [_value_override(k, v) for k, v in best.params.items()]
    report = {
        "study": study_name,
        "metric": args.metric,
        "direction": direction,
        "best_value": float(best.value),
        "best_trial": best.number,
        "best_params": dict(best.params),
        "overrides": [*fixed, *best_overrides],
        "mlflow_parent_run_id": parent_id,
        "mlflow_best_run_id": best.user_attrs.get("run_id"),
        "model_dir": str(trial_dirs.get(best.number, root) / "models" / "model"),
        "trials": len(study.trials),
        "completed": len(done),
    }
    reports = Path(base.paths.reports)
    reports.mkdir(parents=True, exist_ok=True)
    out = reports / "best_params.yaml"
    out.write_text(OmegaConf.to_yaml(OmegaConf.create(report)))
    print(
        f"best {args.metric}={best.value:.4f} (trial {best.number} of {len(study.trials)}): {' '.join(best_overrides)}"
    )
    print(f"train it:  aiinfra train {' '.join(report['overrides'])}")
    print(f"saved {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
