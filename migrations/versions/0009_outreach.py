"""staff phones and digest preferences, outreach calls, notes on handled messages, digests sent

Revision ID: 0009
Revises: 0006
Create Date: 2026-11-30 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff_user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_ciphertext", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("digest_hour", sa.Integer(), nullable=True))
    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.add_column(sa.Column("staff_initiator", sa.String(length=254), nullable=True))
    with op.batch_alter_table("care_team_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handled_note", sa.Text(), nullable=True))
    op.create_table(
        "digest_sent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("sent_at", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_user_id"], ["staff_user.id"], name=op.f("fk_digest_sent_staff_user_id_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest_sent")),
        sa.UniqueConstraint("staff_user_id", "day", name="uq_digest_sent_staff_user_id"),
    )


def downgrade() -> None:
    op.drop_table("digest_sent")
    with op.batch_alter_table("care_team_message", schema=None) as batch_op:
        batch_op.drop_column("handled_note")
    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.drop_column("staff_initiator")
    with op.batch_alter_table("staff_user", schema=None) as batch_op:
        batch_op.drop_column("digest_hour")
        batch_op.drop_column("phone_ciphertext")
