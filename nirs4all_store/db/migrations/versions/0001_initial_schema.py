"""Initial schema: the seven workspace tables.

Foreign keys (ON DELETE CASCADE) and secondary indexes are created on SQLite and
PostgreSQL only: DuckDB rejects ON DELETE CASCADE, its foreign keys break deleting parent
and children in one transaction, and both block later ALTERs (STACK_FACTS).

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from nirs4all_store.types import Float64Array, JSONValue, UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(column: str, target: str, table: str) -> list[sa.ForeignKeyConstraint]:
    if op.get_bind().dialect.name == "duckdb":
        return []
    ref_table = target.split(".")[0]
    return [
        sa.ForeignKeyConstraint(
            [column], [target], ondelete="CASCADE", name=f"fk_{table}_{column}_{ref_table}"
        )
    ]


def _index(table: str, *columns: str) -> None:
    if op.get_bind().dialect.name != "duckdb":
        op.create_index(f"ix_{table}_{'_'.join(columns)}", table, list(columns))


def _create_runs() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("config", JSONValue(), nullable=True),
        sa.Column("datasets", JSONValue(), nullable=True),
        sa.Column("summary", JSONValue(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
    )


def _create_pipelines() -> None:
    op.create_table(
        "pipelines",
        sa.Column("pipeline_id", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("expanded_config", JSONValue(), nullable=True),
        sa.Column("generator_choices", JSONValue(), nullable=True),
        sa.Column("dataset_name", sa.String(), nullable=False),
        sa.Column("dataset_hash", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("best_val", sa.Double(), nullable=True),
        sa.Column("best_test", sa.Double(), nullable=True),
        sa.Column("metric", sa.String(), nullable=True),
        sa.Column("duration_ms", sa.Double(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("pipeline_id", name="pk_pipelines"),
        *_fk("run_id", "runs.run_id", "pipelines"),
    )
    _index("pipelines", "run_id")


def _create_chains() -> None:
    op.create_table(
        "chains",
        sa.Column("chain_id", sa.String(), nullable=False),
        sa.Column("pipeline_id", sa.String(), nullable=False),
        sa.Column("steps", JSONValue(), nullable=False),
        sa.Column("model_step_idx", sa.Integer(), nullable=False),
        sa.Column("model_class", sa.String(), nullable=False),
        sa.Column("preprocessings", sa.String(), nullable=True),
        sa.Column("fold_strategy", sa.String(), nullable=False),
        sa.Column("fold_artifacts", JSONValue(), nullable=True),
        sa.Column("shared_artifacts", JSONValue(), nullable=True),
        sa.Column("branch_path", JSONValue(), nullable=True),
        sa.Column("source_index", sa.Integer(), nullable=True),
        sa.Column("model_name", sa.String(), nullable=True),
        sa.Column("metric", sa.String(), nullable=True),
        sa.Column("task_type", sa.String(), nullable=True),
        sa.Column("dataset_name", sa.String(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", name="pk_chains"),
        *_fk("pipeline_id", "pipelines.pipeline_id", "chains"),
    )
    _index("chains", "pipeline_id")


def _create_predictions() -> None:
    op.create_table(
        "predictions",
        sa.Column("prediction_id", sa.String(), nullable=False),
        sa.Column("pipeline_id", sa.String(), nullable=False),
        sa.Column("chain_id", sa.String(), nullable=True),
        sa.Column("dataset_name", sa.String(), nullable=False),
        sa.Column("model_name", sa.String(), nullable=False),
        sa.Column("model_class", sa.String(), nullable=False),
        sa.Column("fold_id", sa.String(), nullable=False),
        sa.Column("partition", sa.String(), nullable=False),
        sa.Column("val_score", sa.Double(), nullable=True),
        sa.Column("test_score", sa.Double(), nullable=True),
        sa.Column("train_score", sa.Double(), nullable=True),
        sa.Column("metric", sa.String(), nullable=False),
        sa.Column("task_type", sa.String(), nullable=False),
        sa.Column("n_samples", sa.Integer(), nullable=True),
        sa.Column("n_features", sa.Integer(), nullable=True),
        sa.Column("scores", JSONValue(), nullable=True),
        sa.Column("best_params", JSONValue(), nullable=True),
        sa.Column("preprocessings", sa.String(), nullable=True),
        sa.Column("branch_id", sa.Integer(), nullable=True),
        sa.Column("branch_name", sa.String(), nullable=True),
        sa.Column("exclusion_count", sa.Integer(), nullable=True),
        sa.Column("exclusion_rate", sa.Double(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("prediction_id", name="pk_predictions"),
        sa.UniqueConstraint(
            "pipeline_id",
            "chain_id",
            "fold_id",
            "partition",
            "model_name",
            "branch_id",
            name="uq_predictions_natural_key",
        ),
        *_fk("pipeline_id", "pipelines.pipeline_id", "predictions"),
        *_fk("chain_id", "chains.chain_id", "predictions"),
    )
    _index("predictions", "chain_id")
    _index("predictions", "dataset_name", "partition")


def _array(ndim: int, dtype: str = "float64") -> sa.types.TypeEngine[Any]:
    """The array column type of this revision: PostgreSQL held native arrays until 0008
    turned them into bytea (frozen here, whatever `Float64Array` becomes)."""
    if op.get_bind().dialect.name == "postgresql":
        item = sa.BigInteger() if dtype == "int64" else sa.Double()
        return postgresql.ARRAY(item, dimensions=ndim)
    return Float64Array(ndim, dtype)


def _create_prediction_arrays() -> None:
    op.create_table(
        "prediction_arrays",
        sa.Column("prediction_id", sa.String(), nullable=False),
        sa.Column("y_true", _array(1), nullable=True),
        sa.Column("y_pred", _array(1), nullable=True),
        sa.Column("y_proba", _array(2), nullable=True),
        sa.Column("sample_indices", _array(1, "int64"), nullable=True),
        sa.Column("weights", _array(1), nullable=True),
        sa.PrimaryKeyConstraint("prediction_id", name="pk_prediction_arrays"),
        *_fk("prediction_id", "predictions.prediction_id", "prediction_arrays"),
    )


def _create_artifacts() -> None:
    op.create_table(
        "artifacts",
        sa.Column("artifact_id", sa.String(), nullable=False),
        sa.Column("artifact_path", sa.String(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("operator_class", sa.String(), nullable=True),
        sa.Column("artifact_type", sa.String(), nullable=True),
        sa.Column("format", sa.String(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("ref_count", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("referenced_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("artifact_id", name="pk_artifacts"),
    )
    _index("artifacts", "content_hash")


def _create_logs() -> None:
    op.create_table(
        "logs",
        sa.Column("log_id", sa.String(), nullable=False),
        sa.Column("pipeline_id", sa.String(), nullable=False),
        sa.Column("step_idx", sa.Integer(), nullable=False),
        sa.Column("operator_class", sa.String(), nullable=True),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("duration_ms", sa.Double(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("details", JSONValue(), nullable=True),
        sa.Column("level", sa.String(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("log_id", name="pk_logs"),
        *_fk("pipeline_id", "pipelines.pipeline_id", "logs"),
    )
    _index("logs", "pipeline_id")


def upgrade() -> None:
    _create_runs()
    _create_pipelines()
    _create_chains()
    _create_predictions()
    _create_prediction_arrays()
    _create_artifacts()
    _create_logs()


def downgrade() -> None:
    for table in (
        "logs",
        "prediction_arrays",
        "predictions",
        "chains",
        "artifacts",
        "pipelines",
        "runs",
    ):
        op.drop_table(table)
