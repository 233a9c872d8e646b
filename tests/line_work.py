"""A webhook's work as the phone line's runner sees it (app/deadline.py), on a table of
notes: for the runner's tests on SQLite (tests/test_fast_path.py) and PostgreSQL
(tests/test_postgresql_batches.py)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from app.deadline import Abandoned, Guard

Work = Callable[[Session, Guard], tuple[str, None]]


def stored_names(database: Engine | str) -> set[str]:
    """The notes stored, read through the engine or a fresh one on the URL."""
    engine = database if isinstance(database, Engine) else create_engine(database)
    try:
        with engine.begin() as conn:
            return {row[0] for row in conn.execute(text("SELECT name FROM note"))}
    finally:
        if engine is not database:
            engine.dispose()


def writes(name: str, *, fails: bool = False, before: Callable[[], object] | None = None) -> Work:
    """A webhook's work as the webhooks write it: write, commit, answer; its own apology
    if anything fails; nothing at all once its answer has gone (Abandoned)."""

    def work(db: Session, guard: Guard) -> tuple[str, None]:
        try:
            if before is not None:
                before()
            db.execute(text("INSERT INTO note (name) VALUES (:n)"), {"n": name})
            if fails:
                raise RuntimeError("this webhook fails after writing")
            guard.begin_commit()
            db.commit()
            return name, None
        except Abandoned:
            db.rollback()
            raise
        except Exception:
            db.rollback()
            return "apology", None

    return work
