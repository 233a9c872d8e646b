"""call log indexes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 14:49:22.191388
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models


revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_callee_id"), ["callee_id"], unique=False)
        batch_op.create_index("ix_call_started_id", ["started_at", "id"], unique=False)
        batch_op.create_index(
            "ix_call_outcome_accepted", ["outcome", "accepted_at", "duration_seconds"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.drop_index("ix_call_outcome_accepted")
        batch_op.drop_index("ix_call_started_id")
        batch_op.drop_index(batch_op.f("ix_call_callee_id"))
