"""The ``aiinfra`` command line: ``aiinfra <stage> [hydra overrides]`` and a few helpers.

Starting is cheap: this module imports only the standard library. ``--help`` and ``plugins``
never import hydra, torch, lightning, mlflow or evidently; a stage imports what it uses.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from aiinfra import __version__
from aiinfra.errors import AiinfraError

#: stage name -> (import string of its run(cfg) function, one-line help)
STAGES: dict[str, tuple[str, str]] = {
    "prepare": ("aiinfra.stages.prepare:run", "read the source, validate, split, write Parquet"),
    "train": ("aiinfra.stages.train:run", "fit the model with Lightning; track it in MLflow"),
    "evaluate": ("aiinfra.stages.evaluate:run", "test-split metrics and plot data for DVC"),
    "register": ("aiinfra.stages.register:run", "register the model; move the alias if it passes the gate"),
    "serve": ("aiinfra.stages.serve:run", "serve the model (server=http) or score a file (server=batch)"),
    "monitor": ("aiinfra.stages.monitor:run", "drift report of current data against the reference"),
}

EPILOG = """\
stages take Hydra overrides:   aiinfra train model.hidden=128 trainer=gpu
sweeps:                        aiinfra train -m model.hidden=32,64
the composed config of a stage: aiinfra config model.hidden=128
the whole pipeline with DVC:   aiinfra repro      (= dvc repro in the project root)
"""

log = logging.getLogger("aiinfra")


def _setup_environment() -> None:
    # No data leaves the user's machine: Evidently's telemetry is off unless asked for.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    # MLflow's per-file download bars are noise in stage logs
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("alembic", "mlflow", "urllib3", "git", "numexpr", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Lightning has its own console handler; don't print its lines twice
    logging.getLogger("lightning.pytorch").propagate = False
    logging.getLogger("lightning.fabric").propagate = False


def build_parser(plugin_commands: dict[str, tuple[str, str, str]] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiinfra",
        description="Declarative ML lifecycle: data, training, registry, serving, monitoring.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"aiinfra {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in STAGES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model.hidden=128")
        p.add_argument("-m", "--multirun", action="store_true", help="sweep: one run per combination")
        p.add_argument("--params", metavar="FILE", help="use this composed config (params.yaml) instead of conf/")
        p.add_argument("-v", "--verbose", action="store_true")
    p = sub.add_parser("plugins", help="list installed plugins and their components")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("config", help="print the composed, validated config")
    p.add_argument("overrides", nargs="*")
    p = sub.add_parser("compose", help="compose conf/ into params.yaml (for dvc repro)")
    p.add_argument("overrides", nargs="*")
    p.add_argument("-o", "--output", default="params.yaml")
    p.add_argument("--check", action="store_true", help="exit 1 if params.yaml is out of date")
    p = sub.add_parser("repro", help="run the DVC pipeline: `dvc repro` (extra args go to dvc)")
    p.add_argument("dvc_args", nargs=argparse.REMAINDER)
    p = sub.add_parser("tune", help="hyperparameter search with Optuna (each trial an MLflow child run)",
                       add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    p = sub.add_parser("docs", help="generate docs/hooks.md from the hook spec (docs hooks [--check])")
    p.add_argument("what", choices=["hooks"])
    p.add_argument("args", nargs=argparse.REMAINDER, help="-o FILE, --check")
    p = sub.add_parser("new-plugin", help="scaffold a plugin package that passes its own tests")
    p.add_argument("name", help="plugin name, e.g. mysource (creates aiinfra-mysource/)")
    p.add_argument("dest", nargs="?", default=".", help="directory to create it in")
    for name, (_, help_text, provider) in (plugin_commands or {}).items():
        p = sub.add_parser(name, help=f"{help_text} [{provider}]", add_help=False)
        p.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def entry() -> None:
    """The ``aiinfra`` console script: :func:`main`, then a quick exit."""
    code = main()
    # Everything still alive (torch, lightning, mlflow: about a million objects) moves to the
    # permanent GC generation: the interpreter's final collections skip it. Measured on a 3-epoch
    # ``aiinfra train``: about 2 s less between the end of the stage and the process exit. atexit
    # handlers (MLflow's async logging) still run.
    import gc

    gc.freeze()
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _setup_environment()
    try:
        plugin_commands = _plugin_commands(argv)
        if argv and argv[0] in plugin_commands:  # the plugin parses its own arguments, options first too
            from aiinfra.plugins.registry import import_string

            return int(import_string(plugin_commands[argv[0]][0])(argv[1:]) or 0)
        if argv and argv[0] == "tune":  # tune parses its own arguments (argparse's REMAINDER drops a leading option)
            _setup_logging()
            from aiinfra.training.tune import main as tune_main

            return int(tune_main(argv[1:]) or 0)
        args = build_parser(plugin_commands).parse_args(argv)
        if args.command is None:
            build_parser(plugin_commands).print_help()
            return 0
        if args.command == "plugins":
            return cmd_plugins(as_json=args.json)
        _setup_logging(getattr(args, "verbose", False))
        if args.command in STAGES:
            return cmd_stage(args.command, args.overrides, multirun=args.multirun, params=args.params)
        if args.command == "config":
            return cmd_config(args.overrides)
        if args.command == "compose":
            return cmd_compose(args.overrides, Path(args.output), check=args.check)
        if args.command == "repro":
            return cmd_repro(args.dvc_args)
        if args.command == "docs":
            from aiinfra.plugins.docs import main as docs_main

            return int(docs_main(args.args) or 0)
        if args.command == "new-plugin":
            from aiinfra.plugins.scaffold import scaffold

            path = scaffold(args.name, args.dest)
            print(f"created {path}: pip install -e {path} && pytest {path / 'tests'}")
            return 0
        raise AssertionError(f"unhandled command {args.command}")  # pragma: no cover
    except AiinfraError as exc:
        print(f"aiinfra: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("aiinfra: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`aiinfra plugins | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _plugin_commands(argv: list[str]) -> dict[str, tuple[str, str, str]]:
    # Only load plugins when the command line may name one of their commands (not for stages).
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in STAGES or first in {"plugins", "config", "compose", "repro", "docs", "new-plugin", "tune"}:
        return {}
    from aiinfra.plugins.manager import get_plugins

    return get_plugins().commands()


# --------------------------------------------------------------------------------------------
# plugins


def cmd_plugins(as_json: bool = False) -> int:
    from aiinfra.plugins.manager import get_plugins

    plugins = get_plugins()
    by_provider = plugins.registry.by_provider()
    commands = plugins.commands()
    rows: list[dict[str, Any]] = []
    for info in plugins.infos:
        comps = by_provider.get(info.provider, []) if info.status == "loaded" else []
        rows.append(
            {
                "name": info.name,
                "distribution": info.dist,
                "version": info.version,
                "entry_point": info.value,
                "status": info.status,
                "reason": info.reason,
                "api": info.api,
                "hooks": info.hooks,
                "components": [
                    {"kind": c.kind, "name": c.name, "target": c.target, "description": c.description}
                    for c in sorted(comps, key=lambda c: (c.kind, c.name))
                ],
                "commands": sorted(n for n, (_, _, p) in commands.items() if p == info.provider),
            }
        )
    if as_json:
        print(json.dumps({"plugins": rows}, indent=2))
        return 0
    for row in rows:
        status = "" if row["status"] == "loaded" else f"  [{row['status']}: {row['reason']}]"
        print(f"{row['distribution']} {row['version']}  (entry point '{row['name']}' -> {row['entry_point']}){status}")
        if row["hooks"]:
            print(f"  hooks: {', '.join(row['hooks'])}")
        for comp in row["components"]:
            print(f"  {comp['kind']:<8} {comp['name']:<14} {comp['description']}")
        for name in row["commands"]:
            print(f"  command  {name}")
    if not rows:
        print("no plugins installed (aiinfra itself is not installed as a distribution?)")
    return 0


# --------------------------------------------------------------------------------------------
# config


def load_config(overrides: list[str], params: str | None = None):
    """Compose (or read params.yaml) and validate; chdir to the project root."""
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
    return validate(raw, get_plugins().registry)


def cmd_config(overrides: list[str]) -> int:
    from omegaconf import OmegaConf

    print(OmegaConf.to_yaml(load_config(overrides)), end="")
    return 0


def cmd_compose(overrides: list[str], output: Path, check: bool = False) -> int:
    from omegaconf import OmegaConf

    from aiinfra.config.compose import compose, find_project_root, load_params, to_yaml, write_params
    from aiinfra.config.validate import validate
    from aiinfra.plugins.manager import get_plugins

    root = find_project_root()
    os.chdir(root)
    if os.environ.get("DVC_EXP_NAME") and not overrides and output.name == "params.yaml":
        # `dvc exp run -S ...` composed params.yaml (with its overrides) just before this stage:
        # keep DVC's file, only validate it.
        raw = load_params(output)
        validate(raw, get_plugins().registry)
        log.info("params.yaml was composed by `dvc exp run`; kept as is")
    else:
        raw = compose(overrides, root / "conf")
        validate(raw, get_plugins().registry)
        if check:
            fresh = output.is_file() and OmegaConf.create(output.read_text()) == OmegaConf.create(to_yaml(raw))
            if not fresh:
                print(f"{output} is out of date with conf/: run `aiinfra compose`", file=sys.stderr)
                return 1
            return 0
        changed = write_params(raw, output)
        log.info("%s %s", "wrote" if changed else "unchanged:", output)
    # the feedback inbox is a dependency of the prepare stage: it must exist, even empty
    feedback = OmegaConf.select(raw, "paths.feedback")
    if feedback:
        Path(str(feedback)).mkdir(parents=True, exist_ok=True)
    return 0


def cmd_repro(dvc_args: list[str]) -> int:
    """`dvc repro` from the project root (the pipeline's compose stage refreshes params.yaml)."""
    import subprocess

    from aiinfra.config.compose import find_project_root

    os.chdir(find_project_root())
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.call([sys.executable, "-m", "dvc", "repro", *dvc_args], env=env)


# --------------------------------------------------------------------------------------------
# stages


def run_stage(stage: str, cfg) -> Any:
    """Run one stage on a validated config and announce it to plugins."""
    from aiinfra.plugins.manager import get_plugins
    from aiinfra.plugins.registry import import_string

    started = time.perf_counter()
    result = import_string(STAGES[stage][0])(cfg)
    outputs = result if isinstance(result, dict) else {"exit_code": result}
    log.info("%s finished in %.1f s", stage, time.perf_counter() - started)
    try:
        get_plugins().hook.aiinfra_stage_finished(stage=stage, outputs=outputs, config=cfg)
    except Exception as exc:  # a plugin's notification must not undo the stage
        log.warning("a plugin's aiinfra_stage_finished failed: %s: %s", type(exc).__name__, exc)
    return result


def _exit_code(result: Any) -> int:
    if isinstance(result, int):
        return result
    if isinstance(result, dict):
        return int(result.get("exit_code", 0))
    return 0


def cmd_stage(stage: str, overrides: list[str], multirun: bool = False, params: str | None = None) -> int:
    if not multirun:
        early_report = stage == "monitor"
        if early_report:
            from aiinfra.monitoring import stage as monitor_stage

            # Evidently's import in the report process is the monitor's critical path: start it
            # before the config is composed (~0.4 s), and stop it if the config wants no report.
            monitor_stage.prestart_report()
        try:
            cfg = load_config(overrides, params)
            if early_report:
                monitor_stage.keep_report_if_wanted(cfg)
            return _exit_code(run_stage(stage, cfg))
        finally:
            if early_report:
                monitor_stage.discard_report()
    if params:
        raise AiinfraError("--params and -m cannot be combined", hint="sweep over conf/ overrides instead")
    return _multirun(stage, overrides)


def _sweep_jobs(overrides: list[str]) -> list[list[str]]:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [job for batch in batches for job in batch]


def _multirun(stage: str, overrides: list[str]) -> int:
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
        if "trainer" in cfg:
            check_sweep_trainer(cfg.trainer, launcher=launcher)
    log.info("sweep: %d runs", len(jobs))
    results: list[int] = []

    def task(cfg) -> None:
        from omegaconf import OmegaConf

        from aiinfra.config.validate import validate
        from aiinfra.plugins.manager import get_plugins

        from hydra.core.hydra_config import HydraConfig

        plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        # each job of a sweep keeps its own outputs (model, plots, checkpoints) in its Hydra job
        # directory; the runs are compared in MLflow, and no job overwrites another's model
        job_dir = Path(HydraConfig.get().runtime.output_dir)
        plain.paths.models = str(job_dir / "models")
        plain.paths.plots = str(job_dir / "plots")
        plain.paths.metrics = str(job_dir / "metrics.json")
        if "trainer" in plain and "checkpoint" in plain.trainer:
            plain.trainer.checkpoint.dir = str(job_dir / "checkpoints")
        try:
            results.append(_exit_code(run_stage(stage, validate(plain, get_plugins().registry))))
        except AiinfraError as exc:  # one job's user error: a clear line, the sweep goes on
            print(f"aiinfra: error in sweep job {HydraConfig.get().job.num}: {exc}", file=sys.stderr)
            results.append(exc.exit_code)

    argv = sys.argv
    os.environ["AIINFRA_MULTIRUN"] = "1"  # stages refuse what breaks sweeps (Lightning's ddp)
    sys.argv = [f"aiinfra-{stage}", "--multirun", *overrides]
    try:
        hydra.main(config_path=str(root / "conf"), config_name="config", version_base="1.3")(task)()
    finally:
        sys.argv = argv
    return max(results, default=0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
