"""Migrations reach the models exactly, and go down as well as up."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from app.migrate import downgrade, upgrade
from app.models import Base
from app.settings import Settings
from tests.conftest import PG_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/migrate.db"
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL not set")
    admin = create_engine(Settings(database_url=PG_URL).database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS peerline_migrations"))
        conn.execute(text("CREATE DATABASE peerline_migrations"))
    admin.dispose()
    return Settings(database_url=PG_URL).database_url.rsplit("/", 1)[0] + "/peerline_migrations"


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
    for statement in ("UPDATE audit_event SET actor = 'b'", "DELETE FROM audit_event"):
        with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    engine.dispose()
