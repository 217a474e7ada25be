"""runs.heartbeat_at: when the process recording a running run last said it was alive.

A run whose process died stays 'running' forever otherwise. The recording process refreshes
the heartbeat as it commits; readers report a 'running' run whose heartbeat is older than
a threshold as 'interrupted' (`list_runs`, `reap_stale_runs`). A nullable column on a table
no foreign key references in DuckDB's DDL: a plain ALTER on every backend.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from nirs4all_store.types import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("heartbeat_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "heartbeat_at")
