"""The aiinfra hook specification: every hook a plugin can implement.

This module is the plugin API. It is versioned by :data:`aiinfra.API_VERSION`; hooks only ever
gain arguments (pluggy lets an implementation take fewer arguments than the spec offers), and an
argument is retired by first warning through ``warn_on_impl_args``. The hook reference in
``docs/hooks.md`` is generated from the docstrings here (``python -m aiinfra.plugins.docs``), and
a test fails when a hook lacks documentation or a test.

A plugin is a module (or object) registered under the ``aiinfra`` entry-point group::

    [project.entry-points.aiinfra]
    mysource = "aiinfra_mysource.plugin"

and implements hooks with :data:`hookimpl`::

    from aiinfra.plugins import hookimpl

    @hookimpl
    def aiinfra_register_components(register):
        register("source", "mysource", target="aiinfra_mysource.source:MySource",
                 schema="aiinfra_mysource.schema:MySourceConfig")

Keep plugin modules light: targets and schemas are import strings, imported only when used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypedDict

import pluggy

if TYPE_CHECKING:  # pragma: no cover - typing only
    from omegaconf import DictConfig

    from aiinfra.monitoring.verdict import DriftReport
    from aiinfra.plugins.registry import Register

PROJECT = "aiinfra"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


#: ``register(name, *, target="package.module:function", help="one line")``
RegisterCommand = Callable[..., None]


class StageOutputs(TypedDict, total=False):
    """What a stage reports to ``aiinfra_stage_finished`` (each stage sets the keys it produces).

    Stages may add keys in later versions: read them with ``outputs.get(...)``.
    """

    exit_code: int  # monitor, serve: the stage's exit status
    prepared_dir: str  # prepare
    dataset_hash: str  # prepare, train
    model_dir: str  # train
    run_id: str  # train: the MLflow run
    model_uri: str  # train (runs:/...), register (models:/<name>/<version>)
    metrics_file: str  # evaluate (plus one float per test metric, e.g. test_accuracy)
    model_name: str  # register
    version: str  # register: the registered model version
    alias: str  # register
    passed: bool  # register: the gate's verdict
    alias_moved: bool  # register: the alias now points at ``version``
    reason: str  # register: why the gate passed or failed


@hookspec
def aiinfra_register_components(register: Register) -> None:
    """Register named components: data sources, models, trainers, servers, monitors, alert sinks.

    Call ``register(kind, name, target=..., schema=..., description=...)`` once per component.

    :param register: the registration callback. ``kind`` is one of
        :data:`aiinfra.plugins.registry.KINDS`; ``name`` is what users write in config
        (``source: mysource`` in a ``conf/source/*.yaml`` file, ``type: mysource``);
        ``target`` is ``"package.module:attribute"``, imported only when the component is built;
        ``schema`` is ``"package.module:Dataclass"``, a light dataclass that validates the
        component's config before anything heavy is imported. Enumerated options are
        ``enum.StrEnum`` fields; ranges and cross-field rules go in a ``check(self)`` method that
        calls :func:`aiinfra.config.checks.fail`. The component receives its config as an
        instance of this dataclass (defaults filled in, checks passed). A field declared
        ``field(metadata={"component": KIND})`` holds components of another kind (as
        ``monitor.alerts`` holds sinks), each validated against its own registered schema.

    Two plugins registering the same kind and name is an error that names both distributions.

    .. versionadded:: 1.0
    """


@hookspec
def aiinfra_config_searchpath() -> list[str] | str | None:
    """Return Hydra config search-path entries that hold this plugin's config files.

    An entry is ``"pkg://package.conf"`` (a package directory shipped in the wheel) or
    ``"file:///abs/dir"``. Its sub-directories are config groups (``source/``, ``model/``,
    ``server/`` ...), so a plugin that ships ``conf/source/sql.yaml`` makes
    ``aiinfra train source=sql`` work with nothing copied into the user's ``conf/``.
    The project's own ``conf/`` always comes first, so a user can shadow any plugin file.

    .. versionadded:: 1.0
    """


@hookspec
def aiinfra_register_commands(register: RegisterCommand) -> None:
    """Register extra CLI sub-commands.

    :param register: the registration callback:
        ``register(name, target="package.module:function", help="one line")``. The target is
        imported only when the command runs (``aiinfra NAME ARGS...``) and is called with the
        remaining command-line arguments (a list of strings); it returns an exit status (or
        None for 0). Raise :class:`aiinfra.errors.AiinfraError` for user errors: the CLI prints
        its message and hint without a traceback.

    Two plugins registering the same command name is an error that names both distributions.

    .. versionadded:: 1.0
    """


@hookspec
def aiinfra_stage_finished(stage: str, outputs: StageOutputs, config: DictConfig) -> None:
    """Called after a pipeline stage returned (a stage that raised an error calls nothing).

    :param stage: ``prepare``, ``train``, ``evaluate``, ``register``, ``serve`` or ``monitor``.
    :param outputs: what the stage produced (:class:`StageOutputs`): paths (``str``), metrics
        (``float``), MLflow run id, model URI and version, depending on the stage;
        ``{"exit_code": n}`` for a stage that returns only a status (a monitor that found drift
        returns 1 and still calls this hook). Read keys with ``outputs.get(...)``: stages may add
        keys in later versions.
    :param config: the resolved config of the run (an ``omegaconf.DictConfig``, read-only).

    Use it to notify, to copy outputs elsewhere or to chain work. A notification hook: an
    exception raised here is logged as a warning naming the plugin, the other implementations
    still run, and the stage's result stands.

    .. versionadded:: 1.0
    .. versionchanged:: 1.2
       ``outputs`` is typed (:class:`StageOutputs`); the calling rule is documented.
    """


@hookspec
def aiinfra_on_drift(report: DriftReport, config: DictConfig) -> None:
    """Called when the monitor detects drift.

    :param report: the drift verdict (:class:`aiinfra.monitoring.verdict.DriftReport`):
        ``drift_detected``, ``drift_share``, ``threshold``, per-column ``columns`` (method, score,
        threshold, drifted), ``rows`` (``current``, ``reference``) and the paths of the HTML and
        JSON reports.
    :param config: the resolved config of the monitor run (an ``omegaconf.DictConfig``, read-only).

    The monitor calls this hook next to its configured alert sinks (``sink`` components: log
    line, JSON file, webhook; ``monitor.alerts``). The report is written before either runs. A
    notification hook: a failing implementation is logged, recorded in the verdict's outcomes, and
    the other implementations and the sinks still run.

    .. versionadded:: 1.0
    .. versionchanged:: 1.2
       ``report`` is typed (:class:`~aiinfra.monitoring.verdict.DriftReport`).
    """
