"""reminders and attention flags

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 14:29:49.519499
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models


revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "attention_flag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pair_id", sa.Integer(), nullable=False),
        sa.Column("period_start", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("raised_at", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cleared_by", sa.String(length=254), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["pair_id"], ["pair.id"], name=op.f("fk_attention_flag_pair_id_pair")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attention_flag")),
        sa.UniqueConstraint("pair_id", "period_start", name="uq_attention_flag_pair_period"),
    )
    with op.batch_alter_table("attention_flag", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attention_flag_pair_id"), ["pair_id"], unique=False)

    op.create_table(
        "reminder",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("pair_id", sa.Integer(), nullable=False),
        sa.Column("period_start", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("created_at", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["pair_id"], ["pair.id"], name=op.f("fk_reminder_pair_id_pair")),
        sa.ForeignKeyConstraint(
            ["participant_id"], ["participant.id"], name=op.f("fk_reminder_participant_id_participant")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder")),
        sa.UniqueConstraint("participant_id", "period_start", name="uq_reminder_participant_period"),
    )
    with op.batch_alter_table("reminder", schema=None) as batch_op:
        batch_op.create_index("ix_reminder_due", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_reminder_pair_id"), ["pair_id"], unique=False)

    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reminder_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_call_reminder_id_reminder"), "reminder", ["reminder_id"], ["id"]
        )

    with op.batch_alter_table("pair", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("next_reminder_at", app.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_pair_next_reminder_at"), ["next_reminder_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("pair", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pair_next_reminder_at"))
        batch_op.drop_column("next_reminder_at")

    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_call_reminder_id_reminder"), type_="foreignkey")
        batch_op.drop_column("reminder_id")

    with op.batch_alter_table("reminder", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reminder_pair_id"))
        batch_op.drop_index("ix_reminder_due")

    op.drop_table("reminder")
    with op.batch_alter_table("attention_flag", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attention_flag_pair_id"))

    op.drop_table("attention_flag")
