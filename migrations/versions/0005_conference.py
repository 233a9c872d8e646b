"""the bridge becomes a conference: the room, talk time, stepping out, conference callbacks

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("partner_ended_at", app.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("partner_answered_by", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("room", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("talk_seconds", sa.Integer(), nullable=True))
        # calls made before the conference stepped out of nothing: 0, not NULL
        batch_op.add_column(
            sa.Column("caller_stepped_out", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(
            sa.Column("partner_stepped_out", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(sa.Column("caller_place", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("partner_place", sa.String(length=8), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_call_room"), ["room"])

    op.create_table(
        "conference_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("conference_sid", sa.String(length=64), nullable=False),
        sa.Column("participant_sid", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=24), nullable=False),
        sa.Column("at", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sequence_number", sa.Integer(), nullable=True),
        sa.Column("received_at", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["call.id"], name=op.f("fk_conference_event_call_id_call")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conference_event")),
        sa.UniqueConstraint(
            "call_id",
            "conference_sid",
            "participant_sid",
            "event",
            "at",
            name="uq_conference_event_callback",
        ),
    )
    with op.batch_alter_table("conference_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conference_event_call_id"), ["call_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("conference_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conference_event_call_id"))
    op.drop_table("conference_event")

    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_call_room"), type_="unique")
        batch_op.drop_column("partner_place")
        batch_op.drop_column("caller_place")
        batch_op.drop_column("partner_stepped_out")
        batch_op.drop_column("caller_stepped_out")
        batch_op.drop_column("talk_seconds")
        batch_op.drop_column("room")
        batch_op.drop_column("partner_answered_by")
        batch_op.drop_column("partner_ended_at")
