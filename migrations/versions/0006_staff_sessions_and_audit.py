"""staff sessions that end on the server, a session epoch per account, coalesced failed sign-ins,
and an audit trail that TRUNCATE cannot empty

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-24 10:00:00.000000

The audit trail stays append-only, with one narrow exception the triggers spell out: a failed
sign-in's row may have its `count` raised (an attack is recorded as one row per address and
minute with a count, not one row per guess). Every other UPDATE, every DELETE and, on
PostgreSQL, TRUNCATE are refused by the database itself. The database owner can still drop the
triggers or the table: these guard against the application and its users, not against the owner.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COALESCED = "auth.sign_in_failed"

# SQLite: the only update let through is a coalesced failed sign-in whose count grows and whose
# other columns stay exactly as they were ("IS" compares NULLs as equal)
SQLITE_NO_UPDATE = (
    "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
    f"WHEN NOT (OLD.action = '{COALESCED}' AND NEW.count > OLD.count AND NEW.id IS OLD.id "
    "AND NEW.at IS OLD.at AND NEW.actor IS OLD.actor AND NEW.action IS OLD.action "
    "AND NEW.target IS OLD.target AND NEW.client_ip IS OLD.client_ip) "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END"
)
SQLITE_OLD_NO_UPDATE = (
    "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END"
)

# PostgreSQL: one function for the row triggers (UPDATE, DELETE) and the statement trigger
# (TRUNCATE). The IFs are nested so OLD and NEW are only read where they exist.
POSTGRES_FUNCTION = (
    "CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$ "
    "BEGIN "
    "IF TG_OP = 'UPDATE' THEN "
    f"IF OLD.action = '{COALESCED}' AND NEW.count > OLD.count "
    "AND (NEW.id, NEW.at, NEW.actor, NEW.action, NEW.target, NEW.client_ip) "
    "IS NOT DISTINCT FROM (OLD.id, OLD.at, OLD.actor, OLD.action, OLD.target, OLD.client_ip) THEN "
    "RETURN NEW; "
    "END IF; "
    "END IF; "
    "RAISE EXCEPTION 'audit_event is append-only'; "
    "END $$ LANGUAGE plpgsql"
)
POSTGRES_OLD_FUNCTION = (
    "CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_event is append-only'; END $$ LANGUAGE plpgsql"
)
POSTGRES_NO_TRUNCATE = (
    "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()"
)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("staff_user", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_epoch", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )

    op.create_table(
        "staff_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("created_at", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", app.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["staff_user.id"], name=op.f("fk_staff_session_user_id_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_staff_session_token_hash")),
    )
    with op.batch_alter_table("staff_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_session_user_id"), ["user_id"], unique=False)

    # SQLite rebuilds the table to add a column (batch mode), and a rebuild is an UPDATE and
    # DELETE in all but name: the triggers are dropped first and made again afterwards
    if not postgres:
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("count", sa.Integer(), nullable=False, server_default=sa.text("1")))
    if postgres:
        op.execute(POSTGRES_FUNCTION)
        op.execute(POSTGRES_NO_TRUNCATE)
    else:
        op.execute(SQLITE_NO_UPDATE)
        op.execute(
            "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
            "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END"
        )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event")
        op.execute(POSTGRES_OLD_FUNCTION)
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_column("count")
    if not postgres:
        op.execute(SQLITE_OLD_NO_UPDATE)
        op.execute(
            "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
            "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END"
        )

    with op.batch_alter_table("staff_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_session_user_id"))
    op.drop_table("staff_session")

    with op.batch_alter_table("staff_user", schema=None) as batch_op:
        batch_op.drop_column("session_epoch")
