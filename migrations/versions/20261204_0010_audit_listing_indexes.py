"""audit listings by user and by event: indexes ending in the id

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

`GET /admin/audit?user_id=…` and `?event=…` list newest first by id. With `(user_id)`
alone PostgreSQL fetched every event of the user and sorted them, and an event had no
index at all; `(user_id, id)` and `(event, id)` make a page a range of the index read
backwards. On PostgreSQL the indexes are built and dropped CONCURRENTLY, outside the
migration's transaction, so that upgrading a large audit table does not block the
service's writes to it; SQLite builds them in its transaction (it has no CONCURRENTLY).
"""

from __future__ import annotations

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

TABLE = "audit_events"


def _create(name: str, columns: list[str]) -> None:
    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            # A concurrent build that was interrupted leaves an invalid index behind.
            op.drop_index(name, table_name=TABLE, postgresql_concurrently=True, if_exists=True)
            op.create_index(name, TABLE, columns, postgresql_concurrently=True)
    else:
        op.create_index(name, TABLE, columns)


def _drop(name: str) -> None:
    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            # IF EXISTS: a run interrupted after this drop is run again from the start
            # (each step commits on its own; the revision is stamped only at the end).
            op.drop_index(name, table_name=TABLE, postgresql_concurrently=True, if_exists=True)
    else:
        op.drop_index(name, table_name=TABLE)


def upgrade() -> None:
    # The new index first: the listing by user is never without one.
    _create("ix_audit_events_user_id_id", ["user_id", "id"])
    _drop("ix_audit_events_user_id")
    _create("ix_audit_events_event_id", ["event", "id"])


def downgrade() -> None:
    _drop("ix_audit_events_event_id")
    _create("ix_audit_events_user_id", ["user_id"])
    _drop("ix_audit_events_user_id_id")
