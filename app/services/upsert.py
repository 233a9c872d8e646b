"""INSERT ... ON CONFLICT DO NOTHING on both databases: a row written once however often
its callback, sweep or send comes."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from app.services.cursor import OnCursor

# each database's own INSERT, the one with ON CONFLICT
_BUILDERS: dict[str, Callable[[Any], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


def insert_new(
    table: Any,
    columns: Sequence[str],
    keys: Sequence[str],
    *,
    ids_on: Collection[str] = tuple(_BUILDERS),
) -> dict[str, Insert]:
    """For each dialect, the INSERT of one row's `columns` (bound by their names) that
    does nothing when a row with the same `keys` is there; on the dialects `ids_on` it
    returns the new row's id. Built once: building one for each write cost more than
    running it."""
    made: dict[str, Insert] = {}
    for name, builder in _BUILDERS.items():
        insert = (
            builder(table)
            .values({column: bindparam(column) for column in columns})
            .on_conflict_do_nothing(index_elements=list(keys))
        )
        made[name] = insert.returning(table.c.id) if name in ids_on else insert
    return made


class NewRow:
    """A row written once however often its callback comes, on the driver's cursor
    (app/services/cursor.py). On PostgreSQL the INSERT returns the new row's id, which
    says whether a row was made; on SQLite the cursor says it, and RETURNING (an
    ephemeral table for the rows it returns) would cost as much as the INSERT."""

    def __init__(self, table: Any, columns: Sequence[str], keys: Sequence[str]) -> None:
        self.columns = list(columns)
        self._by_dialect = {
            name: OnCursor(insert, *columns)
            for name, insert in insert_new(table, columns, keys, ids_on=("postgresql",)).items()
        }

    def made(self, db: Session, values: Mapping[str, Any]) -> int | None:
        """The new row's id; None when its row was there already (nothing is written)."""
        return self._by_dialect[db.get_bind().dialect.name].made(db, values)
