"""Legacy nirs4all columns, the `projects` table and the `v_chain_summary` view.

Workspaces written by the earlier raw-DuckDB nirs4all store carry columns the initial schema
lacks (runs.project_id, the chain CV/final scores, predictions.refit_context, the artifact
cache keys), a `projects` table and a `v_chain_summary` view. Adoption
(`nirs4all_store.legacy`) copies them here so nothing a user had disappears. They are real
nullable columns, not a JSON `extra` bag, so the view keeps its original definition and
queries keep working on every backend.

Every added column is nullable without a server default: DuckDB can then add it to a table
that has a UNIQUE constraint (predictions), and SQLite can add it with a plain ALTER.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from nirs4all_store.types import JSONValue, UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The legacy store's view, column for column (it reads columns added here).
V_CHAIN_SUMMARY_SQL = (
    "CREATE VIEW v_chain_summary AS SELECT c.chain_id, c.pipeline_id, c.model_class, "
    "c.model_step_idx, c.model_name, c.preprocessings, c.branch_path, c.source_index, "
    "c.metric, c.task_type, c.best_params, c.dataset_name, c.cv_val_score, c.cv_test_score, "
    "c.cv_train_score, c.cv_fold_count, c.cv_scores, c.final_test_score, "
    "c.final_train_score, c.final_scores, pl.run_id, pl.status AS pipeline_status "
    "FROM chains AS c INNER JOIN pipelines AS pl ON c.pipeline_id = pl.pipeline_id"
)

ADDED_COLUMNS: dict[str, list[tuple[str, sa.types.TypeEngine]]] = {
    "runs": [("project_id", sa.String())],
    "chains": [
        ("best_params", JSONValue()),
        ("cv_val_score", sa.Double()),
        ("cv_test_score", sa.Double()),
        ("cv_train_score", sa.Double()),
        ("cv_fold_count", sa.Integer()),
        ("cv_scores", JSONValue()),
        ("final_test_score", sa.Double()),
        ("final_train_score", sa.Double()),
        ("final_scores", JSONValue()),
    ],
    "predictions": [("refit_context", sa.String())],
    "artifacts": [
        ("chain_path_hash", sa.String()),
        ("input_data_hash", sa.String()),
        ("dataset_hash", sa.String()),
    ],
}


def upgrade() -> None:
    for table, columns in ADDED_COLUMNS.items():
        for name, type_ in columns:
            op.add_column(table, sa.Column(name, type_, nullable=True))
    op.create_table(
        "projects",
        sa.Column("project_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("color", sa.String(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", name="pk_projects"),
    )
    op.execute(V_CHAIN_SUMMARY_SQL)


def downgrade() -> None:
    op.execute("DROP VIEW v_chain_summary")
    op.drop_table("projects")
    for table, columns in ADDED_COLUMNS.items():
        for name, _type in reversed(columns):
            op.drop_column(table, name)
