"""Replays a rendered Dockerfile without a container engine: its instructions are parsed, paths
under the image's root are mapped into a directory, its `RUN pip install` steps run offline
(`--no-index --find-links <context>/wheels`) in a fresh venv that already sees this environment's
packages (a .pth line: nothing is downloaded), and its ENTRYPOINT is started there."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: image directories that live in the replay root (the rest, /bin or /usr, is the host's)
MAPPED = ("/app", "/opt", "/tmp/")


def parse(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; line continuations joined, comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


@dataclass
class Replay:
    context: Path
    root: Path
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str | None = None
    useradd_uid: str | None = None
    entrypoint: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    exposed: list[int] = field(default_factory=list)
    stopsignal: str | None = None
    base: str | None = None
    pip_steps: list[list[str]] = field(default_factory=list)

    def map(self, value: str) -> str:
        """Every image path under MAPPED in ``value`` (a path, a PATH list, a command) moved under root."""
        here = "\0ROOT\0"
        value = value.replace(str(self.root), here)  # idempotent: a mapped path is not mapped again
        for prefix in MAPPED:
            for sep in (" ", ":", "="):
                value = value.replace(f"{sep}{prefix}", f"{sep}{here}{prefix}")
            if value.startswith(prefix):
                value = f"{here}{value}"
        return value.replace(here, str(self.root))

    def run(self, instructions: list[tuple[str, str]]) -> None:
        for op, args in instructions:
            getattr(self, f"_{op.lower()}")(args)

    def _from(self, args: str) -> None:
        self.base = args

    def _env(self, args: str) -> None:
        for item in shlex.split(args):
            key, _, value = item.partition("=")
            value = value.replace("$PATH", os.environ.get("PATH", ""))
            self.env[key] = self.map(value)

    def _label(self, args: str) -> None:
        pass

    def _expose(self, args: str) -> None:
        self.exposed += [int(p.split("/")[0]) for p in args.split()]

    def _workdir(self, args: str) -> None:
        self.workdir = args
        Path(self.map(args)).mkdir(parents=True, exist_ok=True)

    def _user(self, args: str) -> None:
        self.user = args

    def _stopsignal(self, args: str) -> None:
        self.stopsignal = args

    def _copy(self, args: str) -> None:
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        *sources, dest = parts
        target = Path(self.map(dest if dest.startswith("/") else f"{self.workdir}/{dest}"))
        for src in sources:
            s = self.context / src
            if s.is_dir():
                shutil.copytree(s, target, dirs_exist_ok=True)
            else:
                dst = target / s.name if dest.endswith("/") else target
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(s, dst)

    def _healthcheck(self, args: str) -> None:
        self.healthcheck = json.loads(args.partition("CMD ")[2])

    def _entrypoint(self, args: str) -> None:
        self.entrypoint = json.loads(args)

    def _run(self, args: str) -> None:
        argv = shlex.split(args)
        if argv[0] == "useradd":  # needs root; the replay checks that USER names this uid instead
            self.useradd_uid = argv[argv.index("--uid") + 1]
            return
        if argv[:3] == ["python", "-m", "venv"]:
            venv = Path(self.map(argv[3]))
            # "the venv already has the packages": this environment's site-packages (its pip and
            # setuptools included) after the venv's own, which starts empty
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
            site = next(venv.glob("lib/python*/site-packages"))
            here = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
            (site / "zz-host-packages.pth").write_text(here + "\n")
            return
        if argv[:2] == ["pip", "install"]:
            offline = ["--no-index", "--find-links", str(self.context / "wheels"), "--disable-pip-version-check"]
            cmd = [self.which("python"), "-m", "pip", "install", "-q", *offline, *[self.map(a) for a in argv[2:]]]
            self.pip_steps.append(cmd)
            proc = subprocess.run(cmd, env=self.environ(), capture_output=True, text=True)
            if proc.returncode != 0:
                raise AssertionError(f"RUN {args} failed:\n{proc.stdout}\n{proc.stderr}")
            return
        raise AssertionError(f"the replay does not know how to run: RUN {args}")

    def which(self, exe: str) -> str:
        for d in self.env.get("PATH", "").split(os.pathsep):
            if (Path(d) / exe).is_file():
                return str(Path(d) / exe)
        raise AssertionError(f"{exe} not on the image's PATH {self.env.get('PATH')}")

    def environ(self, **extra: str) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("AIINFRA_", "MLFLOW_", "VIRTUAL_ENV"))}
        return {**keep, **self.env, **extra}

    def command(self, argv: list[str]) -> list[str]:
        return [self.which(argv[0]), *[self.map(a) for a in argv[1:]]]
