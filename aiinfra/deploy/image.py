"""``aiinfra deploy image``: an OCI build context for the server.

    <out>/Dockerfile            slim Python base, a venv, the locked dependencies, the wheel, a non-root user
    <out>/requirements/torch.txt   torch from the CPU or CUDA wheel index (deploy.torch)
    <out>/requirements/lock.txt    every other dependency, pinned to the versions this project runs with
    <out>/wheels/aiinfra-*.whl  this project's wheel (built from its source)
    <out>/app/conf/, app/params.yaml   the project's config and the composed, validated one the server reads
    <out>/app/models/<name>/    the model, with deploy.model=baked
    <out>/.dockerignore

The ENTRYPOINT is exec form, so SIGTERM reaches the server (its drain: ``server.graceful_timeout_s``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from aiinfra.config.typed import to_dict
from aiinfra.deploy.container import APP_DIR, PARAMS, VENV_DIR, check_port, http_server
from aiinfra.errors import AiinfraError, ConfigError

#: packages the lock never pins: the installer's own, and the project itself
_NOT_LOCKED = {"pip", "wheel", "aiinfra", "torch"}  # setuptools stays: torch needs it at run time


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_lock(root: str = "aiinfra", extras: tuple[str, ...] = ()) -> dict[str, str]:
    """name -> installed version of every distribution ``root`` needs (transitively, with the
    extras its requirements name), as installed in this environment."""
    from packaging.requirements import Requirement

    found: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset(extras))]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, wanted = todo.pop()
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency this environment lacks: the image does not get it either
        found[_norm(dist.metadata["Name"])] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is not None and not any(req.marker.evaluate(env) for env in envs):
                continue
            todo.append((_norm(req.name), frozenset(req.extras)))
    return {n: v for n, v in sorted(found.items()) if n not in _NOT_LOCKED}


def source_dir() -> Path:
    """aiinfra's source checkout (the directory with its pyproject.toml)."""
    import aiinfra

    here = Path(aiinfra.__file__).resolve().parent.parent
    if not (here / "pyproject.toml").is_file():
        raise AiinfraError(
            f"cannot build the aiinfra wheel: no pyproject.toml next to {here / 'aiinfra'}",
            hint="install aiinfra from its source checkout (pip install -e .) to render an image",
        )
    return here


def build_wheel(dest: Path) -> Path:
    """This project's wheel (no dependencies; offline: setuptools from this environment).

    Built from a copy of the sources: setuptools reuses a checkout's ``build/lib``, which can hold
    files older than the sources.
    """
    import tempfile

    src = source_dir()
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("aiinfra-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="aiinfra-wheel-") as tmp:
        copy = Path(tmp) / "src"
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        copy.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "MANIFEST.in"):
            if (src / name).is_file():
                shutil.copy2(src / name, copy / name)
        for package in ("aiinfra", "hydra_plugins"):
            if (src / package).is_dir():
                shutil.copytree(src / package, copy / package, ignore=ignore)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dest), "."],
            cwd=copy,
            capture_output=True,
            text=True,
        )
    wheels = sorted(dest.glob("aiinfra-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise AiinfraError(
            f"building the aiinfra wheel failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}",
            hint="pip wheel --no-deps --no-build-isolation . in the aiinfra checkout shows the whole error",
        )
    return wheels[0]


def torch_requirements(d: Any) -> str:
    version = metadata.version("torch").split("+")[0]
    if d.torch == "cuda":
        return f"--extra-index-url https://download.pytorch.org/whl/{d.cuda}\ntorch=={version}+{d.cuda}\n"
    # the local version (+cpu) exists only on PyTorch's index: PyPI's torch is the CUDA build
    return f"--extra-index-url https://download.pytorch.org/whl/cpu\ntorch=={version}+cpu\n"


def _bake_model(cfg: Any, dest: Path) -> tuple[str, str, str]:
    """Copy the served model directory into the context; (directory name, name, version)."""
    from aiinfra.serving.runtime import default_model_uri
    from aiinfra.tracking.mlflow_setup import remove_download, resolve_model  # mlflow: only for registry URIs

    resolved = resolve_model(default_model_uri(cfg), cfg)
    try:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(resolved.name)) or "model"
        target = dest / name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(resolved.path, target)
    finally:
        remove_download(resolved)
    return name, str(resolved.name), str(resolved.version)


def container_params(cfg: Any, model_uri: str | None) -> dict[str, Any]:
    """The config the server in the container reads: the composed one, listening on 0.0.0.0."""
    tree = to_dict(cfg)
    tree.pop("deploy", None)
    tree["server"]["host"] = "0.0.0.0"
    if model_uri is not None:
        tree["server"]["model_uri"] = model_uri
    tree["server"]["access_log"] = "-"
    return tree


#: the HEALTHCHECK: the base image has no curl; the venv's Python does the GET
HEALTHCHECK = "import urllib.request as u; u.urlopen('http://127.0.0.1:{port}/v2/health/ready', timeout=2)"

DOCKERFILE = """\
# syntax=docker/dockerfile:1
# Rendered by `aiinfra deploy image` from the project's config; build and push:
#   docker build -t {image} {out} && docker push {image}
FROM {base_image}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DO_NOT_TRACK=1
RUN useradd --create-home --uid {uid} --shell /usr/sbin/nologin aiinfra
RUN python -m venv {venv}
ENV PATH={venv}/bin:$PATH VIRTUAL_ENV={venv}

# dependencies first: this layer is rebuilt only when the lock changes
COPY requirements/ /tmp/requirements/
# one resolution: torch's own dependencies get the locked versions too
RUN pip install -r /tmp/requirements/torch.txt -r /tmp/requirements/lock.txt
COPY wheels/ /tmp/wheels/
RUN pip install --no-deps /tmp/wheels/{wheel}

WORKDIR {app}
COPY --chown={uid}:{uid} app/ {app}/
USER {uid}
ENV AIINFRA_PROJECT_DIR={app}
LABEL org.opencontainers.image.title="{name}" \\
      ai.aiinfra.model.name="{model_name}" \\
      ai.aiinfra.model.version="{model_version}" \\
      ai.aiinfra.model.source="{model_source}"
EXPOSE {port}
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 CMD {healthcheck}
STOPSIGNAL SIGTERM
# exec form: the server is PID 1 and gets SIGTERM itself (it drains, flushes the prediction log, exits 0)
ENTRYPOINT ["aiinfra", "serve", "--params", "{params}"]
"""


def render(cfg: Any, d: Any, out: Path) -> list[Path]:
    http_server(cfg, "image")
    port = check_port(cfg, d)
    if d.model == "pull":
        uri = str(cfg.tracking.uri)
        if not uri.startswith(("http://", "https://", "databricks")):
            raise ConfigError(
                f"deploy.model: pull needs an MLflow tracking server the container can reach, "
                f"but tracking.uri is {uri!r}",
                hint="bake the model in (deploy.model=baked) or set tracking.uri=https://mlflow.example.com",
            )
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    req = out / "requirements"
    req.mkdir(exist_ok=True)
    (req / "torch.txt").write_text(torch_requirements(d))
    lock = dependency_lock()
    if str(cfg.server.type) == "ray":  # the Ray Serve runtime (and KubeRay's head/workers) run ray[serve]
        lock.update(dependency_lock("ray", ("serve",)))
        lock = dict(sorted(lock.items()))
    lines = [f"{n}=={v}" for n, v in lock.items()] + [str(p) for p in d.extra_packages]
    (req / "lock.txt").write_text(
        "# the versions this project runs with (aiinfra's dependency closure); rendered by aiinfra deploy image\n"
        + "\n".join(lines)
        + "\n"
    )
    wheel = build_wheel(out / "wheels")
    app = out / "app"
    shutil.rmtree(app, ignore_errors=True)
    shutil.copytree(Path.cwd() / "conf", app / "conf")  # load_config chdir'ed to the project root
    model_name = model_version = ""
    model_uri = None
    if d.model == "baked":
        dirname, model_name, model_version = _bake_model(cfg, app / "models")
        model_uri = f"{APP_DIR}/models/{dirname}"
    import yaml

    (app / "params.yaml").write_text(
        "# the composed, validated config the server reads in the container (aiinfra deploy image)\n"
        + yaml.safe_dump(container_params(cfg, model_uri), sort_keys=False)
    )
    (out / "Dockerfile").write_text(
        DOCKERFILE.format(
            image=d.image.ref,
            out=out,
            base_image=d.base_image,
            uid=d.uid,
            venv=VENV_DIR,
            wheel=wheel.name,
            app=APP_DIR,
            name=d.name,
            model_name=model_name,
            model_version=model_version,
            model_source=d.model,
            port=port,
            params=PARAMS,
            healthcheck=json.dumps(["python", "-c", HEALTHCHECK.format(port=port)]),
        )
    )
    (out / ".dockerignore").write_text("**/__pycache__\n**/*.pyc\n")
    written += [
        out / "Dockerfile",
        req / "torch.txt",
        req / "lock.txt",
        wheel,
        app / "params.yaml",
        out / ".dockerignore",
    ]
    return written
