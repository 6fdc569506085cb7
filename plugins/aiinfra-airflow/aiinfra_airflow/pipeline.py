"""The project's pipeline as DVC sees it: the stages of ``dvc.yaml`` and their dependencies.

The edges come from DVC's own graph (``Repo.index.graph``: a stage depends on the stages whose
outputs its deps or params files overlap), not from a second reading of dvc.yaml, so the DAG
agrees with ``dvc repro`` on foreach/matrix stages, directory outputs and ``params.yaml``.
Only the project's top-level ``dvc.yaml`` is exported (a nested ``dvc.yaml`` elsewhere in the
repository is a pipeline of its own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from aiinfra.errors import ConfigError
from aiinfra_airflow.settings import ID_PATTERN


@dataclass(frozen=True)
class Stage:
    name: str  # the stage's name in dvc.yaml (``dvc repro --single-item NAME`` in the project)
    task_id: str  # the Airflow task id
    upstream: tuple[str, ...]  # task ids this stage depends on, in dvc.yaml order


def task_id(stage: str) -> str:
    """A DVC stage name as an Airflow task id (``train@lr-0.1`` -> ``train_lr-0.1``)."""
    return re.sub(r"[^\w.-]", "_", stage)[:250]


def read(project: Path) -> list[Stage]:
    """The stages of ``<project>/dvc.yaml`` in an order DVC could run them: dvc.yaml order, except
    that a stage never comes before one it depends on (a stable topological order)."""
    dvc_yaml = project / "dvc.yaml"
    if not dvc_yaml.is_file():
        raise ConfigError(
            f"no pipeline to export: {dvc_yaml} not found",
            hint="run in an aiinfra project (aiinfra init creates dvc.yaml) or pass --project DIR",
        )
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo

    try:
        repo = Repo(str(project))
    except NotDvcRepoError:
        raise ConfigError(f"{project} is not a DVC repository", hint=f"cd {project} && dvc init") from None
    try:
        with repo:
            stages = [s for s in repo.index.stages if Path(s.path).resolve() == dvc_yaml.resolve()]
            graph = repo.index.graph
            # stage.name, not .addressing: the address is relative to the cwd, the name to dvc.yaml
            position = {s.name: i for i, s in enumerate(stages)}
            mine = set(stages)
            needs = {
                s.name: sorted({d.name for d in graph.successors(s) if d in mine}, key=position.get) for s in stages
            }
    except DvcException as exc:
        raise ConfigError(f"{dvc_yaml}: DVC cannot read the pipeline: {exc}", hint="check it with `dvc dag`") from None
    if not stages:
        raise ConfigError(f"{dvc_yaml} has no stages", hint="add stages (aiinfra init writes the standard pipeline)")
    order = _stable_topological(list(position), needs)
    ids = {name: task_id(name) for name in order}
    clash = _first_clash(ids)
    if clash:
        raise ConfigError(
            f"{dvc_yaml}: stages {clash[0]!r} and {clash[1]!r} both become Airflow task id {ids[clash[0]]!r}",
            hint="rename one of them (Airflow task ids allow letters, digits, '_', '.', '-')",
        )
    assert all(ID_PATTERN.match(t) for t in ids.values())
    return [Stage(n, ids[n], tuple(ids[d] for d in needs[n])) for n in order]


def _stable_topological(names: list[str], needs: dict[str, list[str]]) -> list[str]:
    """Kahn's algorithm that always takes the earliest ready stage in dvc.yaml order:
    deterministic, and the identity when dvc.yaml lists stages in run order (the usual case)."""
    done: list[str] = []
    left = list(names)
    while left:
        ready = next((n for n in left if all(d in done for d in needs[n])), None)
        if ready is None:  # DVC itself refuses cycles; kept as a guard
            raise ConfigError(f"the pipeline has a cycle among {', '.join(left)}", hint="check it with `dvc dag`")
        done.append(ready)
        left.remove(ready)
    return done


def _first_clash(ids: dict[str, str]) -> tuple[str, str] | None:
    seen: dict[str, str] = {}
    for name, tid in ids.items():
        if tid in seen:
            return seen[tid], name
        seen[tid] = name
    return None
