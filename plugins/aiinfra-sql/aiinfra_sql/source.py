"""The ``sql`` source: ``SQLSource(cfg).read()`` returns a DataFrame of a table or query.

``cfg`` is the validated ``source`` section (:class:`aiinfra_sql.schema.SQLSourceConfig`): the rules
between its fields hold already; what is left is the environment (the URL) and the database.
"""

from __future__ import annotations

import logging
from typing import Any

from aiinfra.errors import ConfigError, DataValidationError, did_you_mean
from aiinfra_sql import state
from aiinfra_sql.schema import Commit
from aiinfra_sql.url import resolve_url

log = logging.getLogger("aiinfra.sql")


class SQLSource:
    def __init__(self, cfg: Any):
        self.cfg = cfg
        self.url = resolve_url(cfg)
        self.table, self.query = cfg.table, cfg.query
        inc = cfg.incremental
        self.incremental, self.column = inc.enabled, inc.column
        self.state_file, self.start = inc.state_file, inc.start
        self.commit_on_read = inc.commit == Commit.read

    @property
    def key(self) -> str:
        return state.source_key(self.url, self.table, self.query, self.column or "")

    def watermark(self) -> Any | None:
        """The lower bound of this run: the last committed watermark, else ``incremental.start``."""
        last = state.committed(self.state_file, self.key)
        return last if last is not None else self.start

    def read(self):
        import pandas as pd
        import sqlalchemy as sa

        engine = sa.create_engine(self.url)
        where = self.watermark() if self.incremental else None
        try:
            with engine.connect() as conn:
                stmt, params = self._statement(conn, where)
                frame = pd.read_sql(stmt, conn, params=params)
        except sa.exc.SQLAlchemyError as exc:
            raise DataValidationError(
                f"cannot read from {self._where()}: {type(exc.orig or exc).__name__}: "
                f"{str(exc.orig or exc).splitlines()[0]}",
                hint="check source.url, source.table / source.query and the database permissions",
            ) from None
        finally:
            engine.dispose()
        if self.incremental:
            if frame.empty:
                raise DataValidationError(
                    f"no rows in {self._where()} with {self.column} > {where!r} (the lower bound of this run).",
                    hint="nothing new to train on; wait for new rows, or read everything with "
                    "source.incremental.enabled=false",
                )
            if self.column not in frame.columns:
                raise DataValidationError(f"the incremental column '{self.column}' is not in the result.")
            newest = frame[self.column].max()
            state.record(self.state_file, self.key, newest, commit=self.commit_on_read)
            log.info("sql: %d rows with %s > %r; new watermark %r", len(frame), self.column, where, newest)
        drop = [c for c in self.cfg.exclude if c in frame.columns]
        return frame.drop(columns=drop)

    def _where(self) -> str:
        from sqlalchemy.engine import make_url

        url = make_url(self.url).render_as_string(hide_password=True)
        return f"table '{self.table}' of {url}" if self.table else f"the query of {url}"

    def _statement(self, conn: Any, watermark: Any) -> tuple[Any, dict[str, Any]]:
        import sqlalchemy as sa

        if self.table:
            schema = self.cfg.db_schema
            try:
                table = sa.Table(self.table, sa.MetaData(), autoload_with=conn, schema=schema)
            except sa.exc.NoSuchTableError:
                names = sa.inspect(conn).get_table_names(schema=schema) + sa.inspect(conn).get_view_names(schema=schema)
                raise ConfigError(
                    f"table '{self.table}' not found in {self._where().split(' of ', 1)[1]}."
                    + did_you_mean(self.table, names),
                    hint=f"tables there: {', '.join(sorted(names)) or '(none)'}",
                ) from None
            stmt = sa.select(table)
            if self.incremental:
                if self.column not in table.c:
                    raise ConfigError(
                        f"incremental column '{self.column}' is not a column of '{self.table}'."
                        + did_you_mean(self.column, table.c.keys()),
                        hint=f"columns: {', '.join(table.c.keys())}",
                    )
                if watermark is not None:
                    # bound through the column: its type converts the watermark (dates, numbers)
                    stmt = stmt.where(table.c[self.column] > _coerce(watermark, table.c[self.column]))
                stmt = stmt.order_by(table.c[self.column])
            return stmt, {}
        params = dict(self.cfg.params)
        if not self.incremental:
            return sa.text(self.query), params
        col = conn.dialect.identifier_preparer.quote(self.column)
        sql = f"SELECT * FROM ({self.query}) AS aiinfra_q"
        if watermark is not None:
            sql += f" WHERE aiinfra_q.{col} > :aiinfra_watermark"
            params["aiinfra_watermark"] = watermark
        return sa.text(sql + f" ORDER BY aiinfra_q.{col}"), params


def _coerce(value: Any, column: Any) -> Any:
    """``incremental.start`` comes from YAML as a string or number: give it the column's type."""
    from datetime import date, datetime

    try:
        kind = column.type.python_type
    except NotImplementedError:
        return value
    if isinstance(value, str) and kind is datetime:
        return datetime.fromisoformat(value)
    if isinstance(value, str) and kind is date:
        return date.fromisoformat(value)
    if kind in (int, float) and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return kind(value)
    return value
