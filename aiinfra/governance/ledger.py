"""The run ledger: one hash-chained record per stage run in ``<paths.logs>/ledger.jsonl``.

A record says what ran (stage, command, the config's hash, git commit, host, user), on what
(content hashes of the stage's ``deps`` in ``dvc.yaml``, taken before it runs) and with what
result (the hashes of its ``outs``, metrics and plots after it ran; status, exit code, the
stage's JSON-able outputs, what it used and cost). :class:`StageRun` is started by the runner
before the config is composed (so composition is measured) and finished whatever happened; a
failure to write the ledger never fails the stage (one warning). The format is in docs/audit.md.

Hashing is cheap for big data: a file's hash is cached by (path, size, mtime_ns) in
``.aiinfra/hash-cache.json``, so an unchanged 1 GB file is not read again. Standard library only
(the config's YAML is read through omegaconf, already imported by then).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiinfra.governance.chain import append, read
from aiinfra.governance.resources import ResourceMeter, price
from aiinfra.governance.signing import sha256_file
from aiinfra.storage import urls

log = logging.getLogger(__name__)

LEDGER = "ledger.jsonl"
HASH_CACHE = Path(".aiinfra") / "hash-cache.json"
#: a file modified this recently is hashed but not cached: a rewrite within the same mtime tick
#: and of the same size would otherwise keep its old hash (git's "racy clean" rule)
RACY_S = 2.0
MAX_CACHE = 20000
_warned = False


def ledger_path(cfg: Any) -> Path:
    return Path(cfg.paths.logs) / LEDGER


def _warn_once(what: str, exc: BaseException) -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning("the run ledger was not written (%s: %s); the stage's result stands", what, type(exc).__name__)
    log.debug("ledger failure", exc_info=exc)


def now_iso(epoch: float | None = None) -> str:
    moment = datetime.fromtimestamp(epoch, UTC) if epoch is not None else datetime.now(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------
# content hashes


class HashCache:
    """sha256 of files, cached by (size, mtime_ns); :meth:`save` writes it back atomically (a
    concurrent run may lose its entries, never corrupt the file)."""

    def __init__(self, path: Path = HASH_CACHE) -> None:
        self.path = path
        self.entries: dict[str, list] = {}
        self.read_bytes = 0
        self.hits = 0
        self.files = 0
        self._dirty = False
        try:
            loaded = json.loads(path.read_text())
            if isinstance(loaded, dict):
                self.entries = loaded
        except (OSError, ValueError):
            pass

    def _cached(self, key: str, st: os.stat_result) -> str | None:
        """The cached hash of the file at ``key`` (its resolved path) if its size and mtime are
        unchanged, else None."""
        entry = self.entries.get(key)
        return entry[2] if entry and entry[0] == st.st_size and entry[1] == st.st_mtime_ns else None

    def file(self, path: Path, hashed: dict[Path, str] | None = None) -> str:
        st = path.stat()
        key = str(path.resolve())
        self.files += 1
        cached = self._cached(key, st)
        if cached is not None:
            self.hits += 1
            return cached
        self.read_bytes += st.st_size
        value = "sha256:" + (hashed[path] if hashed and path in hashed else sha256_file(path))
        if time.time() - st.st_mtime_ns / 1e9 > RACY_S:
            self.entries.pop(key, None)  # re-inserted last: the oldest entries are trimmed first
            self.entries[key] = [st.st_size, st.st_mtime_ns, value]
            self._dirty = True
        return value

    def path_hash(self, path: Path) -> str | None:
        """A file's hash; a directory's: sha256 over its sorted relative paths and file hashes;
        None when the path does not exist."""
        if path.is_file():
            return self.file(path)
        if not path.is_dir():
            return None
        digest = hashlib.sha256()
        children = sorted(p for p in path.rglob("*") if p.is_file())
        hashed = self._hash_misses(children)
        for child in children:
            digest.update(f"{child.relative_to(path).as_posix()}\0{self.file(child, hashed)}\n".encode())
        return "sha256:" + digest.hexdigest()

    def _hash_misses(self, paths: list[Path]) -> dict[Path, str]:
        """sha256 of the uncached files among ``paths``, on every core: hashlib lets go of the
        GIL while it hashes, and a partitioned source of 2 GB is 3 s on one core."""
        misses = [path for path in paths if self._cached(str(path.resolve()), path.stat()) is None]
        if len(misses) < 2:
            return {}
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(len(misses), os.cpu_count() or 1)) as pool:
            return dict(zip(misses, pool.map(sha256_file, misses), strict=True))

    def save(self) -> None:
        if not self._dirty:
            return
        while len(self.entries) > MAX_CACHE:
            self.entries.pop(next(iter(self.entries)))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.entries))
        os.replace(tmp, self.path)


def _entries(items: Any) -> list[str]:
    """``deps``/``outs`` of a dvc.yaml stage: strings or one-key mappings ``{path: options}``."""
    out: list[str] = []
    for item in items or []:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            out.extend(str(k) for k in item)
    return out


def stage_files(stage: str, root: Path = Path()) -> tuple[list[str], list[str]]:
    """(inputs, outputs) of ``stage`` in the project's dvc.yaml: its deps; its outs, metrics and
    plots. Empty when there is no dvc.yaml or no such stage (``serve``)."""
    path = root / "dvc.yaml"
    if not path.is_file():
        return [], []
    import yaml  # PyYAML (omegaconf's parser); its C loader: OmegaConf.load took 35 ms here, this 1 ms

    loaded = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    stages = loaded.get("stages") if isinstance(loaded, dict) else None
    spec = stages.get(stage) if isinstance(stages, dict) else None
    if not isinstance(spec, dict):
        return [], []
    outputs = [*_entries(spec.get("outs")), *_entries(spec.get("metrics")), *_entries(spec.get("plots"))]
    return _entries(spec.get("deps")), outputs


#: a URL inside a command line (up to a blank or a quote)
URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")


def _moved(path: str, moved: dict[str, str]) -> str:
    """``path`` as the run really wrote it: a sweep job keeps models/plots/metrics in its own dir."""
    for old, new in moved.items():
        old = old.rstrip("/")
        if path == old or path.startswith(old + "/"):
            return new + path[len(old) :]
    return path


# --------------------------------------------------------------------------------------------
# the record


def config_hash(cfg: Any) -> str:
    from aiinfra.config.typed import to_dict

    text = json.dumps(to_dict(cfg), sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class GitCommit:
    """``git rev-parse HEAD``, started when the stage starts and read when it ends: the stage does
    not wait for git (a few ms); None outside a git repository, without git, or after 2 s."""

    def __init__(self, root: Path = Path()) -> None:
        try:
            self._proc: subprocess.Popen | None = subprocess.Popen(
                ["git", "rev-parse", "HEAD"],
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        except OSError:
            self._proc = None

    def result(self) -> str | None:
        if self._proc is None:
            return None
        try:
            out, _ = self._proc.communicate(timeout=2)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.communicate()
            return None
        if self._proc.returncode != 0:
            return None  # not a git repository: no commit to name
        return out.strip() or None


def git_commit(root: Path = Path()) -> str | None:
    return GitCommit(root).result()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def jsonable(value: Any) -> Any:
    """The JSON part of a stage's outputs: containers, strings, numbers, booleans, None (paths
    as strings, numpy scalars as numbers); anything else is left out."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            plain = jsonable(v)
            if plain is not None or v is None:
                out[str(k)] = plain
        return out
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            plain = item()
            return plain if isinstance(plain, (str, bool, int, float)) else None
        except (TypeError, ValueError):
            return None
    return None


def error_text(exc: BaseException) -> str:
    """What the ledger says about an exception: an aiinfra error's first line (user-facing and
    written to be safe); for anything else only its class name (its message may hold secrets)."""
    from aiinfra.errors import AiinfraError

    if isinstance(exc, AiinfraError):
        first = str(exc.message).strip().splitlines()
        return f"{type(exc).__name__}: {first[0] if first else ''}".rstrip(": ")
    return type(exc).__name__


class StageRun:
    """One stage run's ledger record in the making: started before the config is composed."""

    def __init__(self, stage: str, command: str | None = None) -> None:
        self.stage = stage
        self.meter = ResourceMeter()
        # URLs in it redacted: an override such as source.path='<presigned URL>' carries a key
        self.command = URL_IN_TEXT.sub(
            lambda m: urls.redact(m.group(0)), command or shlex.join(["aiinfra", *sys.argv[1:]])
        )
        self.cfg: Any = None
        self.inputs: dict[str, str | None] = {}
        self.outputs: list[str] = []
        self.overhead_s = 0.0
        self.cache: HashCache | None = None
        self.git: GitCommit | None = None
        self.record: dict[str, Any] | None = None

    def enabled(self) -> bool:
        return self.cfg is not None and bool(self.cfg.audit.ledger)

    def configured(self, cfg: Any, params: str | None = None, moved: dict[str, str] | None = None) -> None:
        """The config is valid: hash the stage's inputs (before it runs, so a stage that rewrites
        its inputs is recorded on what it read)."""
        self.cfg = cfg
        if not self.enabled():
            return
        started = time.perf_counter()
        try:
            self.git = GitCommit()
            self.cache = HashCache()
            inputs, outputs = stage_files(self.stage)
            moved = moved or {}
            files = [_moved(p, moved) for p in inputs]
            source_path = getattr(getattr(cfg, "source", None), "path", None)
            if self.stage == "prepare" and isinstance(source_path, str):
                files.append(source_path)  # the raw file is no dvc.yaml dep of the demo, but it is the input
            if params:
                files.append(os.path.relpath(Path(params).resolve(), Path.cwd()))
            # an object-store input is named (redacted: a presigned URL's query is a key), not hashed
            self.inputs = {
                urls.redact(p): None if urls.is_remote(p) else self.cache.path_hash(Path(p))
                for p in dict.fromkeys(files)
            }
            self.outputs = [_moved(p, moved) for p in outputs]
        except Exception as exc:  # noqa: BLE001 - the ledger must not fail the stage
            _warn_once("hashing the inputs", exc)
        self.overhead_s += time.perf_counter() - started

    def finish(self, outputs: Any = None, error: BaseException | None = None) -> dict[str, Any] | None:
        """Append the record (once); returns it, or None when the ledger is off or failed."""
        if self.record is not None or not self.enabled():
            return self.record
        started = time.perf_counter()
        try:
            self.record = self._append(outputs, error)
            self.overhead_s += time.perf_counter() - started
            log.debug(
                "ledger: seq %s; %d files hashed (%d from the cache, %.1f MB read) in %.1f ms",
                self.record["seq"],
                self.cache.files if self.cache else 0,
                self.cache.hits if self.cache else 0,
                (self.cache.read_bytes if self.cache else 0) / 1e6,
                self.overhead_s * 1000,
            )
        except Exception as exc:  # noqa: BLE001 - the ledger must not fail the stage
            _warn_once("appending the record", exc)
        return self.record

    def _append(self, outputs: Any, error: BaseException | None) -> dict[str, Any]:
        from aiinfra.errors import AiinfraError

        cfg = self.cfg
        cache = self.cache or HashCache()
        hashed = {p: cache.path_hash(Path(p)) for p in self.outputs}
        cache.save()
        if error is None:
            status, code, message = "ok", _exit_code(outputs), None
        elif isinstance(error, (KeyboardInterrupt, SystemExit)):
            code = 130 if isinstance(error, KeyboardInterrupt) else _system_exit_code(error)
            status, message = "interrupted", type(error).__name__
        else:
            status, message = "error", error_text(error)
            code = error.exit_code if isinstance(error, AiinfraError) else 1
        usage = self.meter.usage()
        record = {
            "stage": self.stage,
            "command": self.command,
            "config_hash": config_hash(cfg),
            "inputs": self.inputs,
            "outputs": hashed,
            "start": now_iso(self.meter.started_at),
            "end": now_iso(),
            "status": status,
            "exit_code": code,
            "error": message,
            "host": socket.gethostname(),
            "user": _user(),
            "git_commit": self.git.result() if self.git else git_commit(),
            "usage": usage.to_dict(),
            "cost": price(usage, cfg.costs.rates),
            "labels": dict(cfg.costs.labels),
            "results": jsonable(outputs) if isinstance(outputs, dict) else {},
        }
        return append(ledger_path(cfg), record)


def _exit_code(outputs: Any) -> int:
    if isinstance(outputs, dict):
        try:
            return int(outputs.get("exit_code", 0))
        except (TypeError, ValueError):
            return 0
    return 0


def _system_exit_code(exc: SystemExit) -> int:
    return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)


def read_ledger(cfg: Any) -> list[dict[str, Any]]:
    """The ledger's records, oldest first (unparsable lines skipped; ``aiinfra audit verify`` checks)."""
    return read(ledger_path(cfg))
