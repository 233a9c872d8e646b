"""INSERT ... ON CONFLICT DO NOTHING on both databases, for callbacks that repeat."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.models import Base


def insert_ignore(db: Session, model: type[Base], values: dict[str, Any], keys: list[str]) -> None:
    dialect = db.get_bind().dialect.name
    builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
    db.execute(builder(model).values(**values).on_conflict_do_nothing(index_elements=keys))


def insert_ignore_many(db: Session, model: type[Base], rows: list[dict[str, Any]], keys: list[str]) -> int:
    """One multi-row INSERT ... ON CONFLICT DO NOTHING; returns how many rows were new."""
    if not rows:
        return 0
    dialect = db.get_bind().dialect.name
    builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = builder(model).values(rows).on_conflict_do_nothing(index_elements=keys)
    return len(db.execute(stmt.returning(model.__table__.c.id)).all())
