"""The application layer: environment, logging, config loading, running a stage, reporting errors.

``aiinfra.cli`` parses arguments and calls into here; ``aiinfra tune``, ``aiinfra.testing`` and
embedding applications call the same functions. Like the CLI, this module imports only the
standard library at import time.

Stages. Each stage is a module ``aiinfra.stages.<name>`` with ``run(cfg) -> outputs``, where
``cfg`` is the typed, validated config (:func:`aiinfra.config.validate.validate`). A stage module
may also define ``prestart() -> Prestart | None``: work that the stage wants started *before* the
config is composed (composing takes about 0.4 s; the monitor uses it to start Evidently's report
process, whose import is its critical path). The runner calls ``prestart()`` first, then
``configured(cfg)`` on the returned object once the config is valid (it may stop the work the
config does not want), runs the stage, and calls ``close()`` at the end whatever happened.

The run ledger. Every stage run that got as far as a valid config appends one hash-chained record
to ``<paths.logs>/ledger.jsonl`` (:class:`aiinfra.governance.ledger.StageRun`; docs/audit.md):
:func:`run_stage_command` starts the record, and with it the resource meter, before anything else
(prestart and composition are part of the stage's cost); :func:`run_stage` hashes the inputs, runs
the stage and appends the record whatever happened (``ok``, ``error`` or ``interrupted``), also
for each job of a sweep and each trial of ``aiinfra tune``. A run whose config does not validate
is not recorded: without a config there is no ledger path, and nothing ran. Writing the ledger
never fails a stage.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from aiinfra.errors import AiinfraError

log = logging.getLogger("aiinfra")

#: stage name -> one-line help; the stage is the module ``aiinfra.stages.<name>``
STAGES: dict[str, str] = {
    "prepare": "read the source, validate, split, write Parquet",
    "train": "fit the model with Lightning; track it in MLflow",
    "evaluate": "test-split metrics and plot data for DVC",
    "register": "register the model; move the alias if it passes the gate",
    "serve": "serve the model (server=http) or score a file (server=batch)",
    "monitor": "drift report of current data against the reference",
}


class Prestart(Protocol):
    """What a stage's ``prestart()`` returns (see the module docstring)."""

    def configured(self, cfg: Any) -> None: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------------------------
# process setup


def setup_environment() -> None:
    """Environment every aiinfra process and every process it starts runs with (inherited)."""
    # No data leaves the user's machine: Evidently's telemetry is off unless asked for.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    # MLflow's per-file download bars are noise in stage logs
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT, datefmt="%H:%M:%S")
    for noisy in ("alembic", "mlflow", "urllib3", "git", "numexpr", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Lightning has its own console handler; don't print its lines twice
    logging.getLogger("lightning.pytorch").propagate = False
    logging.getLogger("lightning.fabric").propagate = False


def print_error(exc: AiinfraError, where: str = "") -> None:
    """One ``aiinfra: error: <message>`` line (and its hint) on stderr; ``where`` names a sweep job."""
    print(f"aiinfra: error{f' in {where}' if where else ''}: {exc}", file=sys.stderr)


def report_errors(fn: Callable[[], int]) -> int:
    """Run ``fn`` and turn user errors into one ``aiinfra: error:`` line and an exit status.

    With :func:`print_error`, the only place that prints ``aiinfra: error:``. Anything that is not an
    :class:`~aiinfra.errors.AiinfraError` is a bug and keeps its traceback.
    """
    try:
        return int(fn() or 0)
    except AiinfraError as exc:
        print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("aiinfra: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`aiinfra plugins | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


# --------------------------------------------------------------------------------------------
# config


def load_config(overrides: list[str], params: str | None = None):
    """Compose ``conf/`` (or read ``params.yaml``), validate, return the typed config.

    Changes the working directory to the project root: every relative path in the config is
    relative to it.
    """
    from aiinfra.config.compose import compose, find_project_root, load_params
    from aiinfra.config.validate import validate
    from aiinfra.plugins.manager import get_plugins

    if params:
        path = Path(params).resolve()
        os.chdir(find_project_root(path.parent))
        raw = load_params(path)
        if overrides:
            from omegaconf import OmegaConf

            raw = OmegaConf.merge(raw, OmegaConf.from_dotlist(overrides))
    else:
        root = find_project_root()
        os.chdir(root)
        raw = compose(overrides, root / "conf")
    cfg = validate(raw, get_plugins().registry)
    from aiinfra.storage.endpoint import apply

    apply(cfg.storage)  # before any client is made: every process this one starts inherits it
    return cfg


# --------------------------------------------------------------------------------------------
# stages


def stage_module(stage: str) -> Any:
    import importlib

    if stage not in STAGES:
        from aiinfra.errors import choices_text, did_you_mean

        raise AiinfraError(
            f"unknown stage '{stage}'." + did_you_mean(stage, STAGES), hint=f"stages: {choices_text(STAGES)}"
        )
    return importlib.import_module(f"aiinfra.stages.{stage}")


def exit_code(outputs: Any) -> int:
    if isinstance(outputs, bool):
        return int(outputs)
    if isinstance(outputs, int):
        return outputs
    if isinstance(outputs, dict):
        return int(outputs.get("exit_code", 0))
    return 0


def _command(stage: str, overrides: list[str], params: str | None = None) -> str:
    """The command line that repeats a run (the ledger's ``command``)."""
    import shlex

    return shlex.join(["aiinfra", stage, *(["--params", params] if params else []), *overrides])


def run_stage(
    stage: str,
    cfg: Any,
    ledger: Any = None,
    params: str | None = None,
    moved: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run one stage on a validated config, then tell plugins (``aiinfra_stage_finished``), and
    append the run to the ledger (also when the stage raised).

    Returns the stage's outputs as a dict (``{"exit_code": n}`` for a stage that returns a status).
    ``ledger``: the :class:`~aiinfra.governance.ledger.StageRun` started by the caller (one is
    started here otherwise); ``params``: the params.yaml the config came from (hashed as an input);
    ``moved``: output paths a sweep job writes elsewhere (default path -> the job's path).
    """
    from aiinfra.config.typed import to_dictconfig
    from aiinfra.governance.ledger import StageRun
    from aiinfra.plugins.hooks import call_notification
    from aiinfra.plugins.manager import get_plugins

    run = ledger if ledger is not None else StageRun(stage)
    run.configured(cfg, params=params, moved=moved)
    started = time.perf_counter()
    try:
        from aiinfra.storage.endpoint import preflight

        preflight(cfg, stage)
        result = stage_module(stage).run(cfg)
        outputs = result if isinstance(result, dict) else {"exit_code": exit_code(result)}
        log.info("%s finished in %.1f s", stage, time.perf_counter() - started)
        call_notification(
            get_plugins(), "aiinfra_stage_finished", stage=stage, outputs=outputs, config=to_dictconfig(cfg)
        )
    except BaseException as exc:  # recorded as error/interrupted, then raised on unchanged
        run.finish(error=exc)
        raise
    run.finish(outputs=outputs)
    return outputs


def run_stage_command(stage: str, overrides: list[str], params: str | None = None) -> int:
    """``aiinfra <stage> [overrides]``: start the ledger record (and its resource meter), prestart,
    load the config, run, and return the exit status."""
    from aiinfra.governance.ledger import StageRun

    ledger = StageRun(stage, _command(stage, overrides, params))  # first: its meter counts all below
    module = stage_module(stage)
    prestart = getattr(module, "prestart", None)
    early: Prestart | None = prestart() if prestart is not None else None
    try:
        cfg = load_config(overrides, params)
        if early is not None:
            early.configured(cfg)
        return exit_code(run_stage(stage, cfg, ledger=ledger, params=params))
    finally:
        if early is not None:
            early.close()


# --------------------------------------------------------------------------------------------
# sweeps


def _sweep_jobs(overrides: list[str]) -> list[list[str]]:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [job for batch in batches for job in batch]


def run_multirun(stage: str, overrides: list[str]) -> int:
    """``aiinfra <stage> -m ...``: validate every job of the sweep, then hand over to Hydra's
    sweepers and launchers (basic, joblib, submitit); each job keeps its outputs in its job dir
    and appends its own ledger record (its command: ``aiinfra <stage> <the job's overrides>``)."""
    import hydra

    from aiinfra.config.compose import find_project_root

    root = find_project_root()
    os.chdir(root)
    # Validate every combination before the first run starts: a typo in the 5th job of a sweep
    # must not cost the first four.
    sweep_overrides = [o for o in overrides if not o.startswith("hydra/") and not o.startswith("hydra.")]
    from aiinfra.training.checks import check_sweep_trainer

    jobs = _sweep_jobs(sweep_overrides)
    launcher = next((o.split("=", 1)[1] for o in overrides if o.startswith("hydra/launcher=")), None)
    for job in jobs:
        cfg = load_config(job)
        if cfg.trainer is not None:
            check_sweep_trainer(cfg.trainer, launcher=launcher)
    log.info("sweep: %d runs", len(jobs))
    results: list[int] = []

    def task(raw) -> None:
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        from aiinfra.config.validate import validate
        from aiinfra.governance.ledger import StageRun
        from aiinfra.plugins.manager import get_plugins

        plain = OmegaConf.create(OmegaConf.to_container(raw, resolve=True))
        # each job of a sweep keeps its own outputs (model, plots, checkpoints) in its Hydra job
        # directory; the runs are compared in MLflow, and no job overwrites another's model
        hydra_cfg = HydraConfig.get()
        job_dir = Path(hydra_cfg.runtime.output_dir)
        ledger = StageRun(stage, _command(stage, list(hydra_cfg.overrides.task)))
        moved = {
            plain.paths.models: str(job_dir / "models"),
            plain.paths.plots: str(job_dir / "plots"),
            plain.paths.metrics: str(job_dir / "metrics.json"),
        }
        plain.paths.models, plain.paths.plots, plain.paths.metrics = moved.values()
        if "trainer" in plain and "checkpoint" in plain.trainer:
            plain.trainer.checkpoint.dir = str(job_dir / "checkpoints")
        try:
            cfg = validate(plain, get_plugins().registry)
            from aiinfra.storage.endpoint import apply

            apply(cfg.storage)
            results.append(exit_code(run_stage(stage, cfg, ledger=ledger, moved=moved)))
        except AiinfraError as exc:  # one job's user error: a clear line, the sweep goes on
            print_error(exc, where=f"sweep job {HydraConfig.get().job.num}")
            results.append(exc.exit_code)

    argv = sys.argv
    os.environ["AIINFRA_MULTIRUN"] = "1"  # stages refuse what breaks sweeps (Lightning's ddp)
    sys.argv = [f"aiinfra-{stage}", "--multirun", *overrides]
    try:
        hydra.main(config_path=str(root / "conf"), config_name="config", version_base="1.3")(task)()
    finally:
        sys.argv = argv
    return max(results, default=0)
