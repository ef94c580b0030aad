"""the issuer of the instances that share the database

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Empty: the first instance to start records its issuer (authapi.issuer.record).
    op.create_table(
        "issuer",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("issuer", sa.String(length=2048), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_issuer_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issuer")),
    )


def downgrade() -> None:
    op.drop_table("issuer")
