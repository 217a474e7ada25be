"""artifacts.saved_at: when the bytes were last saved (first save or a deduplicated re-save).

Garbage collection and `delete_run(delete_artifacts=True)` spare an unreferenced artifact
that was saved again less than the grace period ago and that no chain has referenced since:
another process may be about to reference it. `created_at` keeps the first save. A nullable
column on a table no foreign key references: a plain ALTER on every backend, DuckDB included.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from nirs4all_store.types import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("artifacts", sa.Column("saved_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column("artifacts", "saved_at")
