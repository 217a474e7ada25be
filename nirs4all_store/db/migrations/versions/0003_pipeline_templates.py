"""The `pipeline_templates` table of the PipelineLibrary.

Templates are structured data (config, category, tags, metrics), so they live in the
workspace database rather than in loose files: one backup, one transaction, one query
language. A new table only: older workspaces upgrade without touching existing rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from nirs4all_store.types import JSONValue, UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pipeline_templates",
        sa.Column("template_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("tags", JSONValue(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("config", JSONValue(), nullable=False),
        sa.Column("metrics", JSONValue(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("template_id", name="pk_pipeline_templates"),
        sa.UniqueConstraint("name", name="uq_pipeline_templates_name"),
    )


def downgrade() -> None:
    op.drop_table("pipeline_templates")
