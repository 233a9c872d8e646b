"""participants pairs calls messages

Revision ID: 0001
Revises:
Create Date: 2026-11-23 14:15:58.731239
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "keyed_id_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("caller_index", sa.String(length=64), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("at", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_keyed_id_failure")),
    )
    with op.batch_alter_table("keyed_id_failure", schema=None) as batch_op:
        batch_op.create_index("ix_keyed_id_failure_caller_at", ["caller_index", "at"], unique=False)

    op.create_table(
        "participant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("phone_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("phone_index", sa.String(length=64), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("quiet_hours", sa.String(length=11), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("active_pair_id", sa.Integer(), nullable=True),
        sa.Column("created_at", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", app.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participant")),
        sa.UniqueConstraint("phone_index", name=op.f("uq_participant_phone_index")),
    )
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_participant_active_pair_id"), ["active_pair_id"], unique=False)

    op.create_table(
        "pair",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_a_id", sa.Integer(), nullable=False),
        sa.Column("participant_b_id", sa.Integer(), nullable=False),
        sa.Column("started_at", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_contact_at", app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_a_id"], ["participant.id"], name=op.f("fk_pair_participant_a_id_participant")
        ),
        sa.ForeignKeyConstraint(
            ["participant_b_id"], ["participant.id"], name=op.f("fk_pair_participant_b_id_participant")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pair")),
    )
    with op.batch_alter_table("pair", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pair_participant_a_id"), ["participant_a_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pair_participant_b_id"), ["participant_b_id"], unique=False)

    # participant and pair refer to each other: the participant -> pair key comes once both exist
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.create_foreign_key("fk_participant_active_pair_id_pair", "pair", ["active_pair_id"], ["id"])

    op.create_table(
        "call",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("twilio_call_sid", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("pair_id", sa.Integer(), nullable=True),
        sa.Column("initiator_id", sa.Integer(), nullable=True),
        sa.Column("callee_id", sa.Integer(), nullable=True),
        sa.Column("caller_index", sa.String(length=64), nullable=True),
        sa.Column("started_at", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("answered_at", app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("bridged_at", app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("end_reason", sa.String(length=64), nullable=True),
        sa.Column("notice_version", sa.String(length=16), nullable=True),
        sa.Column("id_tries", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("status_sequence", sa.Integer(), nullable=True),
        sa.Column("dial_status", sa.String(length=16), nullable=True),
        sa.Column("dial_seconds", sa.Integer(), nullable=True),
        sa.Column("partner_call_sid", sa.String(length=64), nullable=True),
        sa.Column("partner_status", sa.String(length=16), nullable=True),
        sa.Column("partner_seconds", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["callee_id"], ["participant.id"], name=op.f("fk_call_callee_id_participant")
        ),
        sa.ForeignKeyConstraint(
            ["initiator_id"], ["participant.id"], name=op.f("fk_call_initiator_id_participant")
        ),
        sa.ForeignKeyConstraint(["pair_id"], ["pair.id"], name=op.f("fk_call_pair_id_pair")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call")),
        sa.UniqueConstraint("partner_call_sid", name=op.f("uq_call_partner_call_sid")),
        sa.UniqueConstraint("twilio_call_sid", name=op.f("uq_call_twilio_call_sid")),
    )
    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_initiator_id"), ["initiator_id"], unique=False)
        batch_op.create_index("ix_call_pair_started", ["pair_id", "started_at"], unique=False)
        batch_op.create_index(
            "ix_call_pair_initiator_started", ["pair_id", "initiator_id", "started_at"], unique=False
        )

    op.create_table(
        "care_team_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_sid", sa.String(length=64), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=True),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("recording_url", sa.String(length=512), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("received_at", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("handled_at", app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("handled_by", sa.String(length=254), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["call.id"], name=op.f("fk_care_team_message_call_id_call")),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_care_team_message_participant_id_participant"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_team_message")),
        sa.UniqueConstraint("recording_sid", name=op.f("uq_care_team_message_recording_sid")),
    )
    with op.batch_alter_table("care_team_message", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_care_team_message_participant_id"), ["participant_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_care_team_message_received_at"), ["received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("care_team_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_care_team_message_received_at"))
        batch_op.drop_index(batch_op.f("ix_care_team_message_participant_id"))

    op.drop_table("care_team_message")
    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.drop_index("ix_call_pair_initiator_started")
        batch_op.drop_index("ix_call_pair_started")
        batch_op.drop_index(batch_op.f("ix_call_initiator_id"))

    op.drop_table("call")
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.drop_constraint("fk_participant_active_pair_id_pair", type_="foreignkey")
    with op.batch_alter_table("pair", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pair_participant_b_id"))
        batch_op.drop_index(batch_op.f("ix_pair_participant_a_id"))

    op.drop_table("pair")
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_participant_active_pair_id"))

    op.drop_table("participant")
    with op.batch_alter_table("keyed_id_failure", schema=None) as batch_op:
        batch_op.drop_index("ix_keyed_id_failure_caller_at")

    op.drop_table("keyed_id_failure")
