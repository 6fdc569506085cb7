"""Hot reload: follow the model URI (an alias that moves) without failing a request.

The new version is downloaded and loaded off the event loop, then the server's model reference is
swapped in one assignment. Batches already running keep the model they started with; every
response and log row names the version that actually produced it.

Polling is cheap: for ``models:/<name>@<alias>`` only the alias is looked up (one registry query);
artifacts are downloaded only when the version changed. A local directory is fingerprinted by the
modification times of its files.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from aiinfra.serving.runtime import ModelLoader, ServedModel
from aiinfra.tracking.mlflow_setup import setup_mlflow

log = logging.getLogger("aiinfra.serving")


class ModelHolder:
    """The served model of this process; new versions load through the same runtime (``loader``)."""

    def __init__(self, loader: ModelLoader, model: ServedModel, metrics: Any = None):
        self.loader = loader
        self.uri = loader.uri
        self.current = model
        self.metrics = metrics
        self.fingerprint = self._fingerprint_blocking()
        self._lock = asyncio.Lock()
        self.last_check: float | None = None
        self.last_error: str | None = None

    def get(self) -> Any:
        return self.current

    def _fingerprint_blocking(self) -> str:
        uri = self.uri
        if uri.startswith("models:/") and "@" in uri:
            import mlflow  # only for registry URIs: a local directory needs no mlflow

            setup_mlflow(self.loader.cfg)
            name, alias = uri[len("models:/") :].split("@", 1)
            return str(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)
        if "://" in uri or uri.startswith("models:"):
            return self.current.version  # a fixed version: nothing to follow
        path = self.current.path if self.current is not None else Path(uri)
        files = sorted(Path(path).glob("*"))
        return "|".join(f"{f.name}:{f.stat().st_mtime_ns}" for f in files if f.is_file())

    async def check(self, force: bool = False) -> dict[str, Any]:
        """Reload when the URI now points elsewhere (or always with ``force``)."""
        async with self._lock:
            previous = self.current
            self.last_check = time.time()
            fp = None
            try:
                fp = await asyncio.to_thread(self._fingerprint_blocking)
                if fp == self.fingerprint and not force:
                    return {"reloaded": False, "model_name": previous.name, "model_version": previous.version}
                resolved = await asyncio.to_thread(self.loader.resolve, self.uri)
                model = await asyncio.to_thread(self.loader.load, resolved)
            except Exception as exc:  # keep serving the old version; say why, with the whole cause
                msg = describe_failure(self.uri, fp, exc)
                self.last_error = msg
                log.error("model reload of %s failed, still serving version %s: %s", self.uri, previous.version, msg)
                if self.metrics:
                    self.metrics.reloads.labels("error").inc()
                return {"reloaded": False, "error": msg, "model_name": previous.name, "model_version": previous.version}
            self.current = model  # the swap: one reference assignment
            self.fingerprint = fp
            self.last_error = None
            if self.metrics:
                self.metrics.reloads.labels("ok").inc()
                self.metrics.set_model(model.name, model.version, model.uri)
            log.info("reloaded %s: version %s -> %s", self.uri, previous.version, model.version)
            return {
                "reloaded": True,
                "model_name": model.name,
                "model_version": model.version,
                "previous_version": previous.version,
            }

    async def poll(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the poller die
                log.error("reload poll failed: %s", exc)


def describe_failure(uri: str, version: str | None, exc: BaseException) -> str:
    """A reload failure with its whole cause: every line of the exception, its chained causes, and
    the version an alias pointed at (an alias alone does not say which version failed)."""
    target = uri
    if version and uri.startswith("models:/") and "@" in uri:
        target = f"{uri} (version {version})"
    parts = [f"{type(exc).__name__}: {exc}"]
    cause = exc.__cause__ or exc.__context__
    while cause is not None and len(parts) < 5:
        parts.append(f"caused by {type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    return f"loading {target} failed: " + "; ".join(" ".join(p.split()) for p in parts)
