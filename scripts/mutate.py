#!/usr/bin/env python3
"""Mutation checks for the critical promises: each named patch breaks one promise on purpose, and
the tests that prove the promise must fail.

The patches live in ``tests/mutations.toml`` (name, claim, file, exact old text, new text, the
node ids of the tests that must fail). Each one is applied, alone, to a temporary copy of the
repository (never to the checkout: others may be editing it), and those tests run there, with
``PYTHONPATH`` pointing at the copy, so that ``import aiinfra`` in the tests *and* in every CLI
subprocess they start resolve to the mutated code (checked before the first mutation).

    python scripts/mutate.py              # every mutation; exit 1 when one survives or no longer applies
    python scripts/mutate.py --list       # the mutations and the tests that must catch each
    python scripts/mutate.py --only NAME  # one (or several: --only a --only b)
    python scripts/mutate.py --source worktree   # copy the working tree instead of the committed HEAD
    python scripts/mutate.py --jobs 1     # one mutation at a time (default: 2, each in its own copy)
    python scripts/mutate.py --skip-baseline     # after the suite passed on this commit (.ci/run)

The unmutated tests run first (one pytest run): a test that fails without a mutation cannot say
that it caught one (``--skip-baseline`` where the caller has just run them: CI's ``make test``).
Mutations then run two at a time, each worker in its own copy, so a wait in one test (a server
start, a subprocess import) overlaps the other's work; a pytest run per mutation, ``-x``, only
the tests it names, one migrated MLflow store built once for all of them.
Prints "N of N mutations caught" and the time taken.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MUTATIONS = REPO / "tests" / "mutations.toml"
PYTEST_TIMEOUT_S = 300  # per pytest run: a mutation that hangs the code is caught by the timeout


@dataclass(frozen=True)
class Mutation:
    name: str
    claim: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    why: str = ""


def load_mutations(path: Path = MUTATIONS) -> list[Mutation]:
    data = tomllib.loads(path.read_text())
    out: list[Mutation] = []
    for i, entry in enumerate(data.get("mutation", [])):
        missing = [k for k in ("name", "claim", "file", "old", "new", "tests") if k not in entry]
        if missing:
            raise SystemExit(f"{path}: mutation #{i + 1} lacks {', '.join(missing)}")
        if not entry["tests"]:
            raise SystemExit(f"{path}: mutation '{entry['name']}' names no test that must catch it")
        out.append(
            Mutation(
                entry["name"],
                entry["claim"],
                entry["file"],
                entry["old"],
                entry["new"],
                tuple(entry["tests"]),
                entry.get("why", ""),
            )
        )
    names = [m.name for m in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SystemExit(f"{path}: mutation names used twice: {', '.join(dupes)}")
    return out


def applies(m: Mutation, root: Path) -> str | None:
    """None when the patch applies to ``root``; otherwise why not."""
    path = root / m.file
    if not path.is_file():
        return f"{m.file} does not exist"
    n = path.read_text().count(m.old)
    if n == 0:
        return f"its old text is gone from {m.file}: {m.old.strip().splitlines()[0][:80]!r}"
    if n > 1:
        return f"its old text occurs {n} times in {m.file} (make it unique)"
    return None


def make_copy(source: str) -> Path:
    """The repository's tracked files (``head``: as committed; ``worktree``: as on disk now)."""
    root = Path(tempfile.mkdtemp(prefix="aiinfra-mutate-"))
    if source == "head":
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=REPO, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    else:
        files = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            check=True,
            capture_output=True,
        ).stdout.split(b"\0")
        for rel in filter(None, (f.decode() for f in files)):
            src = REPO / rel
            if src.is_file():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, root / rel)
    return root


def env_for(root: Path, cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
    # no stale bytecode: a patch and its revert can have the same size within the same second
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["DO_NOT_TRACK"] = "1"
    # one migrated MLflow store for every pytest run (tests/conftest.py builds it on first use,
    # ~11 s each time otherwise); MLflow alone writes it, so no mutation can change it
    env["AIINFRA_TEST_MLFLOW_TEMPLATE"] = str(cache / "mlflow.db")
    return env


def check_resolution(root: Path, env: dict[str, str]) -> None:
    """``import aiinfra`` (in a fresh interpreter, as the CLI subprocesses do) finds the copy."""
    code = "import aiinfra, aiinfra.cli; print(aiinfra.__file__); print(aiinfra.cli.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True)
    for line in out.stdout.split():
        if not Path(line).resolve().is_relative_to(root.resolve()):
            raise SystemExit(f"mutate: `import aiinfra` resolves to {line}, not to the copy {root}: stopping")


def pytest_run(root: Path, env: dict[str, str], node_ids: list[str], stop_first: bool) -> tuple[int, str]:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *node_ids,
        "-q",
        "-p",
        "no:randomly",
        f"--timeout={PYTEST_TIMEOUT_S}",
        "--hypothesis-profile=mutations",  # no shrinking (tests/conftest.py)
    ]
    if stop_first:
        cmd.append("-x")
    try:
        limit = PYTEST_TIMEOUT_S * len(node_ids) + 120  # pytest-timeout stops a hanging test before this
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired as exc:
        return 1, f"pytest timed out: {exc}"
    return proc.returncode, proc.stdout + proc.stderr


def failed_ids(output: str) -> list[str]:
    return re.findall(r"^FAILED (\S+)", output, flags=re.M)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--list", action="store_true", help="list the mutations and their tests")
    p.add_argument("--only", action="append", default=[], metavar="NAME", help="run only this mutation")
    p.add_argument("--source", choices=["head", "worktree"], default="head", help="what to copy (default: HEAD)")
    p.add_argument("--keep", action="store_true", help="keep the temporary copy")
    p.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="mutations run at a time, each in its own copy (default: 2, or 1 on one core)",
    )
    p.add_argument(
        "--skip-baseline",
        action="store_true",
        help="skip the unmutated run: only after these tests passed on this commit (CI: make test just did)",
    )
    args = p.parse_args(argv)

    mutations = load_mutations()
    if args.only:
        unknown = sorted(set(args.only) - {m.name for m in mutations})
        if unknown:
            print(f"mutate: no mutation named {', '.join(unknown)}", file=sys.stderr)
            return 2
        mutations = [m for m in mutations if m.name in args.only]
    if args.list:
        for m in mutations:
            print(f"{m.name} ({m.claim}): {m.file}\n    caught by: {', '.join(m.tests)}")
        return 0

    t0 = time.monotonic()
    jobs = max(1, min(args.jobs, len(mutations) or 1))
    cache = Path(tempfile.mkdtemp(prefix="aiinfra-mutate-cache-"))
    roots = [make_copy(args.source)]
    # one copy per worker: a worker's patch must never be seen by another worker's tests
    roots += [Path(shutil.copytree(roots[0], f"{roots[0]}-{i}")) for i in range(1, jobs)]
    envs = [env_for(root, cache) for root in roots]
    try:
        for root, env in zip(roots, envs, strict=True):
            check_resolution(root, env)
        root, env = roots[0], envs[0]
        broken = {m.name: why for m in mutations if (why := applies(m, root))}
        for name, why in broken.items():
            print(f"NO LONGER APPLIES  {name}: {why}")
        runnable = [m for m in mutations if m.name not in broken]

        # the baseline: every listed test passes on the unmutated copy
        baseline = sorted({t for m in runnable for t in m.tests})
        if args.skip_baseline:
            print(f"baseline skipped: the caller ran these {len(baseline)} tests unmutated on this commit")
        else:
            rc, out = pytest_run(root, env, baseline, stop_first=False)
            if rc != 0:
                print(out[-6000:])
                which = ", ".join(failed_ids(out)) or f"pytest exit {rc}"
                print(f"mutate: the unmutated tests fail ({which}): fix them first")
                return 1
            print(f"baseline: {len(baseline)} tests pass unmutated ({time.monotonic() - t0:.0f} s)")

        results: dict[str, str] = {}  # name -> caught | survived | error
        lock = threading.Lock()
        todo = list(runnable)

        def worker(root: Path, env: dict[str, str]) -> None:
            while True:
                with lock:
                    if not todo:
                        return
                    m = todo.pop(0)
                results[m.name] = run_one(m, root, env, lock)

        threads = [threading.Thread(target=worker, args=pair) for pair in zip(roots, envs, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        caught = sum(1 for m in runnable if results.get(m.name) == "caught")
        survivors = [m.name for m in runnable if results.get(m.name) != "caught"]
        total = len(mutations)
        print(f"{caught} of {total} mutations caught in {time.monotonic() - t0:.0f} s ({jobs} at a time)")
        if survivors:
            print(f"survived: {', '.join(survivors)} (strengthen their tests)")
        if broken:
            print(f"no longer apply: {', '.join(broken)} (re-anchor the patch on the current code)")
        return 0 if caught == total else 1
    finally:
        for root in roots:
            if args.keep:
                print(f"copy kept at {root}")
            else:
                shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)


def run_one(m: Mutation, root: Path, env: dict[str, str], lock: threading.Lock) -> str:
    """Apply ``m`` to ``root``, run its tests (stopping at the first failure), revert it."""
    path = root / m.file
    original = path.read_text()
    path.write_text(original.replace(m.old, m.new, 1))
    t = time.monotonic()
    try:
        rc, out = pytest_run(root, env, list(m.tests), stop_first=True)
    finally:
        path.write_text(original)
    took = time.monotonic() - t
    with lock:
        if rc == 1:
            by = failed_ids(out)
            print(f"caught    {m.name:<32} by {by[0] if by else '(timeout)'} ({took:.0f} s)", flush=True)
            return "caught"
        if rc == 0:
            print(f"SURVIVED  {m.name:<32} {m.file}: {', '.join(m.tests)} still pass ({took:.0f} s)", flush=True)
            return "survived"
        print(out[-3000:])
        print(f"ERROR     {m.name:<32} pytest exit {rc}: the tests could not run ({took:.0f} s)", flush=True)
        return "error"


if __name__ == "__main__":
    sys.exit(main())
