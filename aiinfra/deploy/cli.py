"""``aiinfra deploy image|k8s|kserve|ray [--out DIR] [--params FILE] [overrides]``.

Composes the project's config with ``+deploy=<target>`` (the ``conf/deploy/<target>.yaml`` of the
``deploy`` group; ``ray`` also selects ``server=ray``), validates all of it, runs the render-time
checks (port, probe paths, replica ranges, the API-key Secret) and writes the files under
``--out`` (default ``deploy.out``, else ``deploy/<target>``). Prints one line per file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

TARGETS = ("image", "k8s", "kserve", "ray")
USAGE_EPILOG = """\
examples:
  aiinfra deploy image --out deploy/image deploy.image.tag=0.2.0
  aiinfra deploy k8s deploy.autoscaling.metric=inflight deploy.autoscaling.max_replicas=8
  aiinfra deploy kserve deploy.scale_target=16
  aiinfra deploy ray server.autoscaling.max_replicas=8
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aiinfra deploy",
        description="render deployment files from the project's config",
        epilog=USAGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", choices=TARGETS)
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. deploy.replicas=3 server.port=8080")
    p.add_argument("--out", metavar="DIR", help="output directory (default: deploy.out, else deploy/<target>)")
    p.add_argument("--params", metavar="FILE", help="a composed config (params.yaml) instead of conf/")
    return p


def target_spec(name: str) -> tuple[Any, Any]:
    """(render function, schema class) of a registered deploy target."""
    from aiinfra.plugins.manager import get_plugins

    spec = get_plugins().registry.get("deploy", name)
    return spec.load(), spec.load_schema()


def _compose(target: str, overrides: list[str], params: str | None) -> Any:
    """The raw composed config, with the deploy group selected."""
    import os

    from omegaconf import OmegaConf

    from aiinfra.config.compose import compose, find_project_root, load_params

    extra = []
    if target == "ray" and not any(o.split("=")[0].lstrip("+~") == "server" for o in overrides):
        extra.append("server=ray")
    if params:
        path = Path(params).resolve()
        os.chdir(find_project_root(path.parent))
        raw = load_params(path)
        deploy_node = compose([f"+deploy={target}"], Path.cwd() / "conf").get("deploy")
        raw = OmegaConf.merge(raw, {"deploy": deploy_node}, OmegaConf.from_dotlist(overrides))
        return raw
    root = find_project_root()
    os.chdir(root)
    has_group = any(o.split("=")[0].lstrip("+") == "deploy" for o in overrides)
    selected = [] if has_group else [f"+deploy={target}"]
    return compose([*extra, *selected, *overrides], root / "conf")


def load(target: str, overrides: list[str], params: str | None = None) -> tuple[Any, Any]:
    """(typed config, its typed ``deploy`` section)."""
    from aiinfra.config.validate import validate
    from aiinfra.errors import ConfigError
    from aiinfra.plugins.manager import get_plugins

    cfg = validate(_compose(target, overrides, params), get_plugins().registry)
    if cfg.deploy is None:
        raise ConfigError("deploy: no deploy target selected", hint=f"aiinfra deploy {'|'.join(TARGETS)}")
    if str(cfg.deploy.type) != target:
        raise ConfigError(f"deploy.type is {cfg.deploy.type!r}, but the command renders {target!r}")
    return cfg, cfg.deploy


def render(target: str, overrides: list[str], out: str | None = None, params: str | None = None) -> list[Path]:
    given = Path(out).resolve() if out else None  # relative to where the command runs
    cfg, d = load(target, overrides, params)  # chdir's to the project root
    fn, _ = target_spec(target)
    dest = given or Path(d.out or f"deploy/{target}").resolve()
    written = fn(cfg, d, dest)
    forget_stale(dest, written)
    return written


#: the files the last render wrote, so the next one removes those it no longer writes (an hpa.yaml
#: left behind after switching to KEDA would still be applied by `kubectl apply -f`)
INDEX = ".aiinfra-deploy.json"


def forget_stale(dest: Path, written: list[Path]) -> None:
    import json

    index = dest / INDEX
    now = {str(p.resolve().relative_to(dest)) for p in written if p.is_file()}
    if index.is_file():
        for rel in set(json.loads(index.read_text()).get("files", [])) - now:
            stale = dest / rel
            if stale.is_file():
                stale.unlink()
    index.write_text(json.dumps({"files": sorted(now)}, indent=1) + "\n")


def main(argv: list[str]) -> int:
    from aiinfra import runner

    args = parser().parse_intermixed_args(argv)
    runner.setup_environment()

    def run() -> int:
        files = render(args.target, args.overrides, args.out, args.params)
        for f in files:
            print(f)
        return 0

    return runner.report_errors(run)
