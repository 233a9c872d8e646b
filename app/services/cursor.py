"""Statements on the driver's cursor: compiled once per dialect, run in the caller's transaction.

A callback runs a few short statements; through SQLAlchemy's Core each cost about
25 µs more than SQLite takes to run it (a cache key, an execution context, a result
object). The callbacks', the sweep's, the dialer's and the reminders' statements are
compiled once per dialect and run on the cursor of the session's connection (in a batch,
the batch's: app/db.statement_connection), in its transaction.
Parameters and rows go through the columns' own bind and result processing: aware UTC
datetimes and vocabulary members, exactly as Core writes and reads them
(tests/test_call_rows.py compares with the ORM).

Below every service that runs statements this way, so that any of them can (the call
services import the reminders' module, which needs it too).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import Dialect, Executable
from sqlalchemy.orm import Session

from app.db import driver_cursor, engine_error, statement_connection

R = TypeVar("R")


@dataclass(frozen=True)
class Compiled:
    sql: str
    names: Sequence[str]  # SQLite's positional style: its parameters, in order
    positional: bool
    constants: Mapping[str, Any]
    binds: Mapping[str, Any]
    results: tuple[Any, ...]
    returning: bool

    def parameters(self, given: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        """The driver's parameters: the constants and the given values, bind-processed."""
        values = {**self.constants, **given}
        for name, process in self.binds.items():
            value = values[name]
            if value is not None:  # NULL is NULL
                values[name] = process(value)
        if self.positional:
            return [values[name] for name in self.names]
        return values  # psycopg takes the names it needs from the mapping

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            value if process is None or value is None else process(value)
            for process, value in zip(self.results, raw, strict=True)
        )


class OnCursor:
    """A Core statement run on the driver's cursor; `given` names its parameters."""

    def __init__(self, statement: Executable, *given: str) -> None:
        self.statement = statement
        self.given = given
        self._by_dialect: dict[str, Compiled] = {}

    def compiled(self, dialect: Dialect) -> Compiled:
        found = self._by_dialect.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)  # type: ignore[attr-defined]
            # lists of constants (`IN (...)`) are expanded once, into plain parameters
            state = compiled.construct_expanded_state(dict.fromkeys(self.given))
            # the compiler's processors are not public API: tests/test_call_rows.py
            # compares what is written and read this way with the ORM
            processors = {**compiled._bind_processors, **state.processors}
            columns = getattr(self.statement, "exported_columns", ())
            found = self._by_dialect[dialect.name] = Compiled(
                sql=state.statement,
                names=list(state.positiontup) if compiled.positional else [],
                positional=bool(compiled.positional),
                constants={
                    k: processors[k](v) if k in processors and v is not None else v
                    for k, v in state.parameters.items()
                    if k not in self.given
                },
                binds={k: p for k, p in processors.items() if k in self.given},
                results=tuple(
                    column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
                ),
                returning=bool(compiled.effective_returning),
            )
        return found

    def _execute(
        self, db: Session, given: Mapping[str, Any], read: Callable[[Any, Compiled], R]
    ) -> tuple[R, Compiled]:
        """The statement run, and what `read` takes from its cursor."""
        conn = statement_connection(db)
        compiled = self.compiled(conn.dialect)
        cursor, owned = driver_cursor(conn)
        try:
            cursor.execute(compiled.sql, compiled.parameters(given))
            return read(cursor, compiled), compiled
        except conn.dialect.loaded_dbapi.Error as exc:
            # as the engine raises it, so that whoever decides what a failure means knows
            # one kind (a try here, not `as_engine_error`: it costs nothing until it
            # raises, on the path of every statement)
            raise engine_error(conn, exc, compiled.sql) from exc
        finally:
            if owned:
                cursor.close()

    def first(self, db: Session, given: Mapping[str, Any]) -> tuple[Any, ...] | None:
        raw, compiled = self._execute(db, given, _one)
        return compiled.row(raw) if raw is not None else None

    def first_as_stored(self, db: Session, given: Mapping[str, Any]) -> Sequence[Any] | None:
        """The first row as the driver gives it, for a reader that takes stored values
        as they are (app/twilio/fast.py: seventeen columns' processing cost more than
        the few it needs)."""
        raw, _ = self._execute(db, given, _one)
        return cast("Sequence[Any] | None", raw)

    def made(self, db: Session, given: Mapping[str, Any]) -> int | None:
        """An `INSERT`: the id of the row it made, None when it made none (a conflict).
        On PostgreSQL the statement must return the id (`RETURNING id`: psycopg's cursor
        does not tell it); SQLite's cursor tells it (app/services/upsert.NewRow)."""
        made, _ = self._execute(db, given, _made)
        return made

    def all(self, db: Session, given: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        raws, compiled = self._execute(db, given, _every)
        return [compiled.row(raw) for raw in raws]

    def count(self, db: Session, given: Mapping[str, Any]) -> int:
        """The rows an UPDATE or DELETE changed."""
        changed, _ = self._execute(db, given, _changed)
        return changed


def _one(cursor: Any, _: Compiled) -> Any:
    return cursor.fetchone()


def _every(cursor: Any, _: Compiled) -> list[Any]:
    return list(cursor.fetchall())


def _changed(cursor: Any, _: Compiled) -> int:
    return int(cursor.rowcount)


def _made(cursor: Any, compiled: Compiled) -> int | None:
    if compiled.returning:  # RETURNING id
        row = cursor.fetchone()
        return None if row is None else int(row[0])
    return int(cursor.lastrowid) if cursor.rowcount == 1 else None
