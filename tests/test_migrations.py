"""Migrations reach the models exactly, and go down as well as up."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from app.migrate import downgrade, upgrade
from app.models import Base
from tests.conftest import PG_URL, new_pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/migrate.db"
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL not set")
    return new_pg_database("migrations")


def test_upgrade_to_head_matches_the_models_exactly(url: str) -> None:
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == []


def test_downgrade_to_base_removes_every_table_and_upgrade_works_again(url: str) -> None:
    upgrade(url)
    downgrade(url)
    engine = create_engine(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(url)


def test_the_audit_trail_cannot_be_changed_even_with_sql(url: str) -> None:
    import sqlalchemy.exc

    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO audit_event (at, actor, action) VALUES (CURRENT_TIMESTAMP, 'a', 'x.y')")
        )
        conn.execute(
            text(
                "INSERT INTO audit_event (at, actor, action, target, client_ip) VALUES "
                "(CURRENT_TIMESTAMP, 'b', 'auth.sign_in_failed', 'wrong email or password', '203.0.113.9')"
            )
        )
    refused = [
        "UPDATE audit_event SET actor = 'b'",
        "DELETE FROM audit_event",
        # the one update allowed is a failed sign-in's count growing, and nothing else with it
        "UPDATE audit_event SET count = count + 1 WHERE action = 'x.y'",
        "UPDATE audit_event SET count = 0 WHERE action = 'auth.sign_in_failed'",
        "UPDATE audit_event SET count = count + 1, actor = 'c' WHERE action = 'auth.sign_in_failed'",
        "UPDATE audit_event SET count = count + 1, target = NULL WHERE action = 'auth.sign_in_failed'",
    ]
    if engine.dialect.name == "postgresql":
        refused.append("TRUNCATE audit_event")
    for statement in refused:
        with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET count = count + 1 WHERE action = 'auth.sign_in_failed'"))
        rows = conn.execute(text("SELECT actor, count FROM audit_event ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("a", 1), ("b", 2)]
    engine.dispose()


def test_failed_sign_ins_are_coalesced_under_the_triggers(url: str) -> None:
    """The coalescing update is the one the triggers let through, on a database made by the
    migrations (the other tests' databases are made from the models, without triggers)."""
    from datetime import UTC, datetime

    from app.db import make_engine, make_sessionmaker
    from app.models import AuditEvent
    from app.services import auth

    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    now = datetime(2026, 11, 17, 20, 0, 5, tzinfo=UTC)
    for second in range(12):
        with pytest.raises((auth.BadCredentials, auth.Locked)):
            auth.sign_in(
                sessions,
                email="nobody@clinic.example.org",
                password="wrong password!",
                client_ip="203.0.113.9",
                now=now.replace(second=second * 4),
                channel="api",
            )
    with sessions() as db:
        rows = [(e.target, e.count) for e in db.query(AuditEvent).order_by(AuditEvent.id)]
    engine.dispose()
    assert rows == [
        ("wrong email or password", 10),
        ("locked: too many wrong passwords for this account", 2),
    ]


def test_truncate_is_refused_but_the_owner_can_still_remove_the_trigger(url: str) -> None:
    """What the trigger guards against is the application and its users; the database owner
    can always drop the trigger (documented in the migration and in docs/design.md)."""
    import sqlalchemy.exc

    if not url.startswith("postgresql"):
        pytest.skip("SQLite has no TRUNCATE; DELETE is refused by its own trigger")
    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO audit_event (at, actor, action) VALUES (CURRENT_TIMESTAMP, 'a', 'x.y')")
        )
    with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"), engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_event"))
    with engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_event")).scalar() == 1
        conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_truncate"))
        conn.execute(text("TRUNCATE audit_event"))
        assert conn.execute(text("SELECT count(*) FROM audit_event")).scalar() == 0
    engine.dispose()
