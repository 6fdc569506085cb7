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

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover - typing only
    from aiinfra.plugins.registry import Register

PROJECT = "aiinfra"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def aiinfra_register_components(register: Register) -> None:
    """Register named components: data sources, models, trainers, servers, monitors, alert sinks.

    Call ``register(kind, name, target=..., schema=..., description=...)`` once per component.

    :param register: the registration callback. ``kind`` is one of
        :data:`aiinfra.plugins.registry.KINDS`; ``name`` is what users write in config
        (``source: mysource`` in a ``conf/source/*.yaml`` file, ``type: mysource``);
        ``target`` is ``"package.module:attribute"``, imported only when the component is built;
        ``schema`` is ``"package.module:Dataclass"``, a light dataclass that validates the
        component's config before anything heavy is imported.

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
def aiinfra_register_commands(register: Any) -> None:
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
def aiinfra_stage_finished(stage: str, outputs: dict[str, Any], config: Any) -> None:
    """Called after a pipeline stage finished successfully.

    :param stage: ``prepare``, ``train``, ``evaluate``, ``register``, ``monitor`` or ``export``.
    :param outputs: what the stage produced, as the stage's ``run`` function returned it: paths
        (``str``), metrics (``float``), MLflow run id, model URI and version, depending on the
        stage; ``{"exit_code": n}`` for a stage that returns only a status. Read keys with
        ``outputs.get(...)``: stages may add keys in later versions.
    :param config: the resolved config of the run (an ``omegaconf.DictConfig``, read-only).

    Use it to notify, to copy outputs elsewhere or to chain work. An exception raised here is
    reported and does not undo the stage.

    .. versionadded:: 1.0
    """


@hookspec
def aiinfra_on_drift(report: dict[str, Any], config: Any) -> None:
    """Called when the monitor detects drift.

    :param report: the drift verdict: ``drift_detected``, ``drift_share``, ``threshold``,
        per-column ``columns`` (method, score, threshold, drifted), ``rows_current``,
        ``rows_reference`` and the paths of the HTML and JSON reports.
    :param config: the resolved config of the monitor run.

    The monitor calls this hook next to its configured alert sinks (``sink`` components: log
    line, JSON file, webhook; ``monitor.alerts``). The report is written before either runs, and a
    failing implementation is reported without losing it.

    .. versionadded:: 1.0
    """
