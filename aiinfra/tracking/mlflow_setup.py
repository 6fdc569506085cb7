"""MLflow wiring: tracking URI, experiment, lineage, and resolving model URIs to local directories.

The default store is an embedded sqlite file in the project (``sqlite:///mlflow.db``), never the
``./mlruns`` file store that MLflow 3 rejects. ``MLFLOW_TRACKING_URI`` in the environment wins
over the config, so a team points every stage at a tracking server without editing ``conf/``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiinfra.errors import AiinfraError
from aiinfra.storage import urls

# MLflow is imported where it is used: this module is imported by every stage module (before the
# config is validated) and by the server, for tracking_uri and local model directories

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"  # name of the aiinfra model directory inside an MLflow model's artifacts
#: where a model directory on an object store is downloaded (under the project root), one folder
#: per URL and download; deleted after loading, like a registry download
MODEL_CACHE = Path(".aiinfra") / "model-cache"


def tracking_uri(tracking_cfg: Any, root: Path | None = None) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI") or tracking_cfg.uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        # relative sqlite paths are relative to the project root, not to wherever we are
        uri = "sqlite:///" + str(((root or Path.cwd()) / uri[len("sqlite:///") :]).resolve())
    return uri


def artifact_location(cfg: Any, uri: str, root: Path) -> str | None:
    """Where a new experiment keeps its artifacts.

    Against a tracking server (http/https) the server decides (its proxied artifact store), so a
    team's artifacts never land on one client's disk. Locally, a relative path is made absolute
    under the project; a location with a scheme (``s3://``, ``mlflow-artifacts:/``) is kept.
    """
    if uri.startswith(("http://", "https://")):
        return None
    location = cfg.tracking.artifact_location
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", location) and not re.match(r"^[A-Za-z]:[\\/]", location):
        return location
    return (root / location).resolve().as_uri()


def setup_mlflow(cfg: Any, root: Path | None = None) -> str:
    """Point MLflow at the configured store and experiment; return the experiment id.

    A locked store is retried for ``tracking.retry_s``; a store that cannot be opened is one
    :class:`~aiinfra.tracking.store.TrackingStoreError` naming it (:mod:`aiinfra.tracking.store`).
    """
    import mlflow

    from aiinfra.tracking.store import retry_seconds, store_call

    root = root or Path.cwd()
    uri = tracking_uri(cfg.tracking, root)
    retry_s = retry_seconds(cfg.tracking)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = cfg.tracking.experiment
    client = store_call(uri, "opening the store", mlflow.MlflowClient, uri, retry_s=retry_s)
    exp = store_call(uri, "reading the experiment", client.get_experiment_by_name, name, retry_s=retry_s)
    if exp is None:
        from mlflow.exceptions import MlflowException

        try:
            exp_id = store_call(
                uri,
                "creating the experiment",
                client.create_experiment,
                name,
                artifact_location=artifact_location(cfg, uri, root),
                retry_s=retry_s,
            )
        except MlflowException:
            # parallel sweep jobs race to create it: the loser uses the winner's experiment
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
            exp_id = exp.experiment_id
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def git_commit(root: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root or Path.cwd(), capture_output=True, text=True, timeout=10
        )
        if out.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root or Path.cwd(),
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


@dataclass
class ResolvedModel:
    """A model URI resolved to a local aiinfra model directory."""

    uri: str
    path: Path  # directory with weights.pt and model.json
    name: str
    version: str
    run_id: str | None = None
    # a registry download into a temporary directory that nothing else owns: whoever loads the
    # model deletes it afterwards (remove_download); None for a local directory
    download_dir: Path | None = None


def remove_download(resolved: ResolvedModel | Any) -> None:
    """Delete the temporary download behind ``resolved`` (a no-op for local directories)."""
    folder = getattr(resolved, "download_dir", None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def download_model_dir(url: str, root: Path | None = None) -> ResolvedModel:
    """An aiinfra model directory on an object store (``s3://bucket/models/model``, or an MLflow
    model's directory holding ``artifacts/model``), downloaded to
    ``.aiinfra/model-cache/<hash of the URL>/<download>``: the project's disk, not /tmp. Every
    download is new (several workers may load at once; a cached copy could be stale) and is
    deleted after loading (``remove_download``); the signature is checked on this local copy."""
    import hashlib
    import uuid

    shown = urls.redact(url)
    base = (root or Path.cwd()) / MODEL_CACHE / hashlib.sha256(shown.encode()).hexdigest()[:16]
    dst = base / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with urls.storage_errors(url, "server.model_uri"):
            if not urls.isdir(url):
                raise urls.missing_error(url, "server.model_uri")
            urls.download_dir(url, dst)
    except BaseException:
        shutil.rmtree(dst, ignore_errors=True)
        raise
    for path in (dst, dst / "artifacts" / MODEL_ARTIFACT):
        if (path / "model.json").is_file():
            name = url.rstrip("/").rsplit("/", 1)[-1]
            return ResolvedModel(url, path, name, "local", download_dir=dst)
    shutil.rmtree(dst, ignore_errors=True)
    raise AiinfraError(
        f"model '{shown}' is not an aiinfra model directory "
        f"(no model.json, nor artifacts/{MODEL_ARTIFACT}/model.json).",
        hint="upload the whole directory that `aiinfra train` wrote (paths.models/model), or give models:/...",
    )


def resolve_model(uri: str, cfg: Any) -> ResolvedModel:
    """``models:/name@alias``, ``models:/name/3``, an MLflow model URI, a model directory on an
    object store (``s3://...``), or a local directory."""
    if urls.is_remote(uri) and urls.scheme(uri) in urls.PROTOCOL_PACKAGES:
        return download_model_dir(uri)
    local = Path(uri)
    if "://" not in uri and not uri.startswith("models:"):
        if (local / "model.json").is_file():
            return ResolvedModel(uri, local.resolve(), local.name, "local")
        if (local / "artifacts" / MODEL_ARTIFACT / "model.json").is_file():
            return ResolvedModel(uri, (local / "artifacts" / MODEL_ARTIFACT).resolve(), local.name, "local")
        raise AiinfraError(
            f"model '{uri}' not found: no such model directory.",
            hint="give models:/<name>@<alias>, models:/<name>/<version> or a model directory",
        )
    import mlflow
    from mlflow.exceptions import MlflowException

    setup_mlflow(cfg)
    client = mlflow.MlflowClient()
    name, version, run_id = "", "", None
    dst = tempfile.mkdtemp(prefix="aiinfra-model-")
    try:
        if uri.startswith("models:/"):
            ref = uri[len("models:/") :]
            if "@" not in ref and "/" not in ref:
                # MLflow 3's logged-model URI (models:/m-<id>, what `train` records): no registry entry
                mv, source = None, uri
            elif "@" in ref:
                name, alias = ref.split("@", 1)
                mv = client.get_model_version_by_alias(name, alias)
            else:
                name, _, ver = ref.partition("/")
                mv = client.get_model_version(name, ver)
            if mv is not None:
                version, run_id = str(mv.version), mv.run_id
                source = f"models:/{name}/{version}"
        else:
            source = uri
        downloaded = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=dst))
    except MlflowException as exc:
        shutil.rmtree(dst, ignore_errors=True)
        raise AiinfraError(
            f"cannot load model '{uri}': {exc.message.splitlines()[0]}",
            hint="train and register one first (`aiinfra train` then `aiinfra register`), "
            "or check the name and alias with the MLflow UI",
        ) from None
    except BaseException:
        shutil.rmtree(dst, ignore_errors=True)
        raise
    path = downloaded / "artifacts" / MODEL_ARTIFACT
    if not (path / "model.json").is_file():
        shutil.rmtree(dst, ignore_errors=True)
        raise AiinfraError(f"model '{uri}' is not an aiinfra model (no artifacts/{MODEL_ARTIFACT}/model.json)")
    return ResolvedModel(uri, path, name or path.name, version or "local", run_id, download_dir=Path(dst))
