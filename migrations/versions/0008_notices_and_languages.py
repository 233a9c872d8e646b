"""the treatment notice as managed, versioned text; each leg's language and notice on the call; prompt audio

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-01 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models

revision: str = "0008"
# the head on this branch; the lead re-chains it after the migrations merged before it
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.add_column(sa.Column("partner_notice_version", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("caller_language", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("partner_language", sa.String(length=8), nullable=True))

    op.create_table(
        "treatment_notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=16), nullable=False),
        sa.Column("texts", sa.JSON(), nullable=False),
        sa.Column("created_at", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=254), nullable=False),
        sa.Column("activated_at", app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("activated_by", sa.String(length=254), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_treatment_notice")),
        sa.UniqueConstraint("version", name=op.f("uq_treatment_notice_version")),
    )
    with op.batch_alter_table("treatment_notice", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_treatment_notice_activated_at"), ["activated_at"], unique=False)

    op.create_table(
        "prompt_audio",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.String(length=40), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("url", sa.String(length=512), nullable=False),
        sa.Column("updated_at", app.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=254), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_audio")),
        sa.UniqueConstraint("prompt", "language", name="uq_prompt_audio_prompt_language"),
    )


def downgrade() -> None:
    op.drop_table("prompt_audio")
    with op.batch_alter_table("treatment_notice", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_treatment_notice_activated_at"))
    op.drop_table("treatment_notice")
    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.drop_column("partner_language")
        batch_op.drop_column("caller_language")
        batch_op.drop_column("partner_notice_version")
