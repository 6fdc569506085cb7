"""One way to read and write a path that is local or an fsspec URL.

Every path a user configures (source files, ``paths.*``, ``server.log_dir``, ``monitor.current``,
feedback, model directories, exported windows) goes through here: a plain path or ``file://``
stays on the local file system (``pathlib`` speed, nothing imported), anything else
(``s3://``, ``gs://``, ``az://``, ``abfs://``, ``memory://``) is opened with fsspec, whose
protocol packages (s3fs, gcsfs, adlfs) read credentials from their standard chains.
A missing protocol package or an unreachable store is one :class:`~aiinfra.errors.StorageError`
naming the URL (without any credential) and the fix.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from aiinfra.errors import StorageError

#: fsspec protocol -> the package that provides it (the hint of a missing one)
PROTOCOL_PACKAGES = {
    "s3": "s3fs (pip install 'aiinfra[s3]')",
    "s3a": "s3fs (pip install 'aiinfra[s3]')",
    "gs": "gcsfs (pip install gcsfs)",
    "gcs": "gcsfs (pip install gcsfs)",
    "az": "adlfs (pip install adlfs)",
    "abfs": "adlfs (pip install adlfs)",
    "abfss": "adlfs (pip install adlfs)",
}
LOCAL_SCHEMES = ("", "file", "local")


def scheme(path: str | os.PathLike) -> str:
    """``s3`` for ``s3://b/k``; ``""`` for a local path (a Windows drive letter is not a scheme)."""
    text = os.fspath(path)
    if "://" not in text:
        return ""
    return text.split("://", 1)[0].lower()


def is_remote(path: str | os.PathLike | None) -> bool:
    """True for a URL that fsspec opens (not a local path, not ``file://``)."""
    return path is not None and scheme(path) not in LOCAL_SCHEMES


def local_path(path: str | os.PathLike) -> Path:
    """The local ``Path`` of a plain path or a ``file://`` URL (a remote URL is an error)."""
    text = os.fspath(path)
    if is_remote(text):
        raise ValueError(f"{redact(text)} is not a local path")
    return Path(text[len("file://") :] if text.startswith("file://") else text)


def redact(url: str | os.PathLike) -> str:
    """The URL for messages and logs: no user, password or query string (signed URLs carry keys)."""
    text = os.fspath(url)
    if not is_remote(text):
        return text
    parts = urlsplit(text)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact_values(value: Any) -> Any:
    """``value`` (a config section as dicts, lists, strings) with every URL in it redacted: what
    lasting records (meta.json, run parameters, the ledger, verdicts) may keep."""
    if isinstance(value, str):
        return redact(value) if "://" in value else value
    if isinstance(value, dict):
        return {k: redact_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_values(v) for v in value]
    return value


def absolute(path: str | os.PathLike) -> str:
    """A local path made absolute (so a process started elsewhere finds it); a URL as it is."""
    text = os.fspath(path)
    return text.rstrip("/") if is_remote(text) else str(local_path(text).resolve())


def missing_error(url: str | os.PathLike, key: str = "") -> StorageError:
    """The error for an object (or prefix) that is not there, naming the URL and the setting."""
    where = f" ({key})" if key else ""
    return StorageError(
        f"{redact(url)}{where}: no such object or prefix in the object store.",
        hint="check the URL (bucket and key) and that the object was written",
    )


@contextlib.contextmanager
def storage_errors(url: str | os.PathLike, key: str = "") -> Iterator[None]:
    """Turn what fsspec/s3fs/botocore raise for a missing object, refused credentials or an
    unreachable endpoint into one StorageError naming ``url`` (never a credential). Local paths
    pass through unchanged: their errors keep their own messages."""
    if not is_remote(url):
        yield
        return
    where = f" ({key})" if key else ""
    try:
        yield
    except StorageError:
        raise
    except FileNotFoundError:
        raise missing_error(url, key) from None
    except PermissionError:
        raise StorageError(
            f"the object store refused access to {redact(url)}{where}.",
            hint="check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile) of this environment",
        ) from None
    except Exception as exc:
        name = type(exc).__name__
        if not _is_storage_failure(exc):
            raise
        if "NoCredentials" in name:
            hint = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment"
        elif "EndpointConnection" in name or "ConnectTimeout" in name or isinstance(exc, OSError):
            hint = "check storage.endpoint_url (or AWS_ENDPOINT_URL) and that the server is up"
        else:
            hint = "check the URL, storage.endpoint_url and the credentials of this environment"
        # only the type name: a library's text can carry a key (botocore's ParamValidationError
        # echoes the request's parameters, a presigned URL its signature)
        raise StorageError(f"cannot read or write {redact(url)}{where}: {name}.", hint=hint) from None


def _is_storage_failure(exc: BaseException) -> bool:
    """An error of the store or the way to it (OSError, anything botocore raises), not a bug."""
    if isinstance(exc, OSError):
        return True
    try:
        import botocore.exceptions as bx
    except ImportError:  # pragma: no cover - no s3fs: no botocore errors either
        return False
    return isinstance(exc, (bx.BotoCoreError, bx.ClientError))


def join(base: str | os.PathLike, *names: str) -> str:
    """``base/name/...`` for a local path or a URL (a URL keeps ``/`` separators)."""
    text = os.fspath(base)
    if is_remote(text):
        return posixpath.join(text.rstrip("/"), *[n.strip("/") for n in names])
    return str(local_path(text).joinpath(*names))


def filesystem(path: str | os.PathLike) -> tuple[Any, str]:
    """(fsspec file system, the path inside it) for a local path or a URL."""
    import fsspec

    text = os.fspath(path)
    try:
        fs, inner = fsspec.core.url_to_fs(text)
    except (ImportError, ValueError) as exc:
        proto = scheme(text)
        package = PROTOCOL_PACKAGES.get(proto)
        if package is not None or "Install" in str(exc) or isinstance(exc, ImportError):
            raise StorageError(
                f"{redact(text)}: the {proto}:// protocol needs a package that is not installed.",
                hint=f"install {package or 'the fsspec implementation of ' + proto}",
            ) from None
        raise StorageError(f"{redact(text)}: not a path or URL that fsspec can open ({exc}).") from None
    return fs, inner


def arrow_filesystem(path: str | os.PathLike) -> tuple[Any, str]:
    """(pyarrow FileSystem, path) for pyarrow datasets and Parquet writers: pyarrow's own local
    file system for local paths, fsspec's (wrapped) for URLs, so credentials and the endpoint
    come from the same place as every other read."""
    import pyarrow.fs as pafs

    if not is_remote(path):
        return pafs.LocalFileSystem(), str(local_path(path).resolve())
    fs, inner = filesystem(path)
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), inner


def inner_path(path: str | os.PathLike) -> str:
    """The path inside :func:`arrow_filesystem`'s file system: absolute for a local path,
    ``bucket/key`` for ``s3://bucket/key``; for lists of files handed to pyarrow datasets."""
    if not is_remote(path):
        return str(local_path(path).resolve())
    fs, _ = filesystem(path)
    return fs._strip_protocol(os.fspath(path))


def _info(path: str | os.PathLike) -> dict | None:
    """What the store says about ``path`` now (None: not there). Not the listing cache: fsspec
    keeps listings for the life of the process, so an object written by another process would
    stay invisible. Only "not there" is False: an unreachable store or refused keys raise
    (fsspec's own ``isfile`` swallows every error, so a dead endpoint read as "no data")."""
    fs, inner = filesystem(path)
    with storage_errors(path):
        fs.invalidate_cache(inner)
        try:
            return fs.info(inner)
        except FileNotFoundError:
            return None


def exists(path: str | os.PathLike) -> bool:
    if not is_remote(path):
        return local_path(path).exists()
    return _info(path) is not None


def isfile(path: str | os.PathLike) -> bool:
    if not is_remote(path):
        return local_path(path).is_file()
    info = _info(path)
    return info is not None and info.get("type") == "file"


def isdir(path: str | os.PathLike) -> bool:
    if not is_remote(path):
        return local_path(path).is_dir()
    info = _info(path)
    return info is not None and info.get("type") == "directory"


def _with_scheme(path: str, inner: str) -> str:
    return f"{scheme(path)}://{inner.lstrip('/')}" if is_remote(path) else inner


def glob(base: str | os.PathLike, pattern: str) -> list[str]:
    """Sorted paths (URLs for a URL base) under ``base`` matching ``pattern`` (``*.parquet``,
    ``**/*.parquet``)."""
    text = os.fspath(base)
    if not is_remote(text):
        return sorted(str(p) for p in local_path(text).glob(pattern))
    fs, inner = filesystem(text)
    # what is there now: fsspec caches listings for the life of the process (a watching monitor
    # would never see a new part of the log)
    fs.invalidate_cache()
    return sorted(_with_scheme(text, p) for p in fs.glob(posixpath.join(inner.rstrip("/"), pattern)))


def open_file(path: str | os.PathLike, mode: str = "rb") -> IO:
    """A file object (binary unless ``mode`` says ``t``); parent directories are made on write."""
    if not is_remote(path):
        local = local_path(path)
        if any(m in mode for m in "wax"):
            local.parent.mkdir(parents=True, exist_ok=True)
        return open(local, mode)  # noqa: SIM115 - the caller closes it
    fs, inner = filesystem(path)
    f = fs.open(inner, mode)
    if any(m in mode for m in "wax") and hasattr(f, "discard"):
        f.__class__ = _discarding(type(f))
    return f


_DISCARDING: dict[type, type] = {}


def _discarding(cls: type) -> type:
    """``cls`` whose ``with`` block throws the object away on an exception: fsspec's own
    ``__exit__`` uploads what was written so far, so a failed write would leave a complete-looking
    (truncated) object that the next reader accepts."""
    if cls not in _DISCARDING:

        def __exit__(self, exc_type, exc, tb):  # noqa: N807 - the context-manager protocol
            if exc_type is None:
                self.close()
                return
            self.discard()
            self.closed = True  # nothing left to upload: close() would flush an empty buffer

        _DISCARDING[cls] = type(f"Discarding{cls.__name__}", (cls,), {"__exit__": __exit__})
    return _DISCARDING[cls]


def read_bytes(path: str | os.PathLike) -> bytes:
    with open_file(path, "rb") as f:
        return f.read()


def read_text(path: str | os.PathLike) -> str:
    return read_bytes(path).decode("utf-8")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with open_file(path, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def makedirs(path: str | os.PathLike) -> None:
    """A directory (a no-op on object stores, which have no directories)."""
    if not is_remote(path):
        local_path(path).mkdir(parents=True, exist_ok=True)
        return
    fs, inner = filesystem(path)
    fs.makedirs(inner, exist_ok=True)


def remove(path: str | os.PathLike, recursive: bool = False) -> None:
    """Delete a file (or a directory tree with ``recursive``); a missing path is not an error."""
    if not is_remote(path):
        local = local_path(path)
        if local.is_dir() and not local.is_symlink():
            if recursive:
                shutil.rmtree(local)
            else:
                local.rmdir()
        elif local.exists() or local.is_symlink():
            local.unlink()
        return
    fs, inner = filesystem(path)
    if fs.exists(inner):
        fs.rm(inner, recursive=recursive)


def download_dir(url: str, dest: str | os.PathLike) -> Path:
    """Copy the tree under ``url`` into the local directory ``dest`` (made if needed)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    fs, inner = filesystem(url)
    fs.get(inner.rstrip("/") + "/", str(dest) + "/", recursive=True)
    return dest


def upload_dir(src: str | os.PathLike, url: str) -> None:
    """Copy the local tree ``src`` to ``url``."""
    fs, inner = filesystem(url)
    fs.put(str(src).rstrip("/") + "/", inner.rstrip("/") + "/", recursive=True)
