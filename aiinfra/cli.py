"""The ``aiinfra`` command line: argparse and one command table.

Starting is cheap: this module imports only the standard library and :mod:`aiinfra.runner`
(which does too). ``--help`` and ``plugins`` never import hydra, torch, lightning, mlflow or
evidently; a command imports what it uses when it runs. Adding a command is one row of
:data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiinfra import __version__, runner

EPILOG = """\
a new project on your CSV:     aiinfra init myproj --csv data.csv --target label
stages take Hydra overrides:   aiinfra train model.hidden=128 trainer=gpu
sweeps:                        aiinfra train -m model.hidden=32,64
the composed config of a stage: aiinfra config model.hidden=128
the whole pipeline with DVC:   aiinfra repro      (= dvc repro in the project root)
"""


def _stage_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model.hidden=128")
    p.add_argument("-m", "--multirun", action="store_true", help="sweep: one run per combination")
    p.add_argument("--params", metavar="FILE", help="use this composed config (params.yaml) instead of conf/")
    p.add_argument("-v", "--verbose", action="store_true")


def _run_stage(stage: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        if not args.multirun:
            return runner.run_stage_command(stage, args.overrides, args.params)
        if args.params:
            from aiinfra.errors import AiinfraError

            raise AiinfraError("--params and -m cannot be combined", hint="sweep over conf/ overrides instead")
        return runner.run_multirun(stage, args.overrides)

    return run


def _plugins_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _plugins(args: argparse.Namespace) -> int:
    from aiinfra.plugins.listing import list_plugins

    return list_plugins(as_json=args.json)


def _overrides_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*")


def _config(args: argparse.Namespace) -> int:
    from aiinfra.commands import show_config

    return show_config(args.overrides)


def _compose_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*")
    p.add_argument("-o", "--output", default="params.yaml")
    p.add_argument("--check", action="store_true", help="exit 1 if params.yaml is out of date")


def _compose(args: argparse.Namespace) -> int:
    from aiinfra.commands import compose_params

    return compose_params(args.overrides, Path(args.output), check=args.check)


def _repro_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dvc_args", nargs=argparse.REMAINDER)


def _repro(args: argparse.Namespace) -> int:
    from aiinfra.commands import repro

    return repro(args.dvc_args)


def _init_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="the project directory (created; must be empty unless --force)")
    p.add_argument("--csv", metavar="PATH", help="your data: copied into DIR/data/raw/ and made the source")
    p.add_argument("--target", metavar="COL", help="the CSV's column to predict (with --csv)")
    p.add_argument("--force", action="store_true", help="write into a non-empty DIR (other files are kept)")


def _init(args: argparse.Namespace) -> int:
    from aiinfra.project_init import main as init_main

    return init_main(args.dir, args.csv, args.target, args.force)


def _tune(argv: list[str]) -> int:
    from aiinfra.training.tune import main as tune_main

    return int(tune_main(argv) or 0)


def _deploy(argv: list[str]) -> int:
    from aiinfra.deploy.cli import main as deploy_main

    return int(deploy_main(argv) or 0)


def _raw(target: str) -> Callable[[list[str]], int]:
    """A command whose module parses its own arguments: ``"pkg.mod:main"``, imported when called."""

    def call(argv: list[str]) -> int:
        import importlib

        module, _, name = target.partition(":")
        return int(getattr(importlib.import_module(module), name)(argv) or 0)

    return call


def _docs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["hooks"])
    p.add_argument("args", nargs=argparse.REMAINDER, help="-o FILE, --check")


def _docs(args: argparse.Namespace) -> int:
    from aiinfra.plugins.docs import main as docs_main

    return int(docs_main(args.args) or 0)


def _new_plugin_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="plugin name, e.g. mysource (creates aiinfra-mysource/)")
    p.add_argument("dest", nargs="?", default=".", help="directory to create it in")


def _new_plugin(args: argparse.Namespace) -> int:
    from aiinfra.plugins.scaffold import scaffold

    path = scaffold(args.name, args.dest)
    print(f"created {path}: pip install -e {path} && pytest {path / 'tests'}")
    return 0


@dataclass(frozen=True)
class Command:
    """One sub-command. ``run`` takes the parsed arguments, or, with ``raw``, the argument list
    after the command name (the command parses its own options, leading ones included)."""

    help: str
    run: Callable[..., int]
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    raw: bool = False
    logging: bool = True  # set up the log format before running


#: every built-in command; plugins add theirs through ``aiinfra_register_commands``
COMMANDS: dict[str, Command] = {
    "init": Command("create a project: conf/, dvc.yaml, git, DVC (--csv FILE --target COL)", _init, _init_args),
    **{name: Command(help, _run_stage(name), _stage_args) for name, help in runner.STAGES.items()},
    "plugins": Command("list installed plugins and their components", _plugins, _plugins_args, logging=False),
    "config": Command("print the composed, validated config", _config, _overrides_args),
    "compose": Command("compose conf/ into params.yaml (for dvc repro)", _compose, _compose_args),
    "repro": Command("run the DVC pipeline: `dvc repro` (extra args go to dvc)", _repro, _repro_args),
    "tune": Command("hyperparameter search with Optuna (each trial an MLflow child run)", _tune, raw=True),
    "deploy": Command("render deployment files: image | k8s | kserve | ray (docs/deploying.md)", _deploy, raw=True),
    "costs": Command(
        "what runs, model versions and serving cost (from the run ledger)",
        _raw("aiinfra.governance.costs_cli:main"),
        raw=True,
    ),
    "audit": Command(
        "the run ledger and registry audit log: verify | report", _raw("aiinfra.governance.audit_cli:main"), raw=True
    ),
    "keys": Command(
        "model signing: generate | show | sign | verify (docs/signing.md)",
        _raw("aiinfra.governance.signing_cli:main"),
        raw=True,
    ),
    "docs": Command("generate docs/hooks.md from the hook spec (docs hooks [--check])", _docs, _docs_args),
    "new-plugin": Command("scaffold a plugin package that passes its own tests", _new_plugin, _new_plugin_args),
}


def _plugin_commands(argv: list[str]) -> dict[str, Command]:
    """Commands registered by plugins, loaded only when the command line may name one."""
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in COMMANDS:
        return {}
    from aiinfra.plugins.manager import get_plugins
    from aiinfra.plugins.registry import import_string

    def call(target: str) -> Callable[[list[str]], int]:
        return lambda rest: int(import_string(target)(rest) or 0)

    return {
        name: Command(f"{help} [{provider}]", call(target), raw=True)
        for name, (target, help, provider) in get_plugins().commands().items()
    }


def build_parser(commands: dict[str, Command] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiinfra",
        description="Declarative ML lifecycle: data, training, registry, serving, monitoring.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"aiinfra {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in (commands or COMMANDS).items():
        p = sub.add_parser(name, help=command.help, description=command.help, add_help=not command.raw)
        if command.raw:
            p.add_argument("args", nargs=argparse.REMAINDER)
        elif command.arguments is not None:
            command.arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    runner.setup_environment()

    def dispatch() -> int:
        commands = {**COMMANDS, **_plugin_commands(argv)}
        if argv and argv[0] in commands and commands[argv[0]].raw:
            # argparse's REMAINDER would drop a leading option: the command parses its own arguments
            command = commands[argv[0]]
            if command.logging:
                runner.setup_logging()
            return command.run(argv[1:])
        args = build_parser(commands).parse_args(argv)
        if args.command is None:
            build_parser(commands).print_help()
            return 0
        command = commands[args.command]
        if command.logging:
            runner.setup_logging(getattr(args, "verbose", False))
        return command.run(args)

    return runner.report_errors(dispatch)


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


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
