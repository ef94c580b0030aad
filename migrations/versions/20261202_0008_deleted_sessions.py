"""deleted_sessions: the revocations of sessions deleted with their account

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "deleted_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deleted_sessions")),
    )
    with op.batch_alter_table("deleted_sessions") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deleted_sessions_revoked_at"), ["revoked_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("deleted_sessions") as batch_op:
        batch_op.drop_index(batch_op.f("ix_deleted_sessions_revoked_at"))
    op.drop_table("deleted_sessions")
