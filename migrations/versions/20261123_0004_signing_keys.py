"""signing keys, private parts encrypted, for rotation without restarts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=255), nullable=False),
        sa.Column("algorithm", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("sealed_private_key", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('next', 'current', 'retired')", name=op.f("ck_signing_keys_state")
        ),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_keys")),
    )
    # At most one current and one next key.
    op.create_index(
        "ix_signing_keys_state",
        "signing_keys",
        ["state"],
        unique=True,
        postgresql_where=sa.text("state <> 'retired'"),
        sqlite_where=sa.text("state <> 'retired'"),
    )


def downgrade() -> None:
    op.drop_index("ix_signing_keys_state", table_name="signing_keys")
    op.drop_table("signing_keys")
