"""Entry point of aiinfra-sql. Import-light: names and import strings only (no SQLAlchemy here)."""

from aiinfra.plugins import hookimpl

AIINFRA_API = ">=1.0,<2"


@hookimpl
def aiinfra_register_components(register):
    register(
        "source",
        "sql",
        target="aiinfra_sql.source:SQLSource",
        schema="aiinfra_sql.schema:SQLSourceConfig",
        description="a SQL table or query (SQLAlchemy URL), optionally incremental",
    )


@hookimpl
def aiinfra_config_searchpath():
    return "pkg://aiinfra_sql.conf"


@hookimpl
def aiinfra_stage_finished(stage, config):
    # The incremental watermark moves only once the prepare stage succeeded: a failed run reads
    # the same window again next time.
    if stage != "prepare":
        return
    source = config.source  # the validated config, read-only
    if source is None or source.type != "sql" or not source.incremental.enabled:
        return
    from aiinfra_sql.state import commit_pending

    commit_pending(source)
