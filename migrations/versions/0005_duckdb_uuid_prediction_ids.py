"""Prediction ids as DuckDB's native UUID type (DuckDB only; a no-op elsewhere).

Measured on DuckDB 2.0 (benchmarks/bench_delete.py, issue 6): deleting a run of 100k
predictions spent ~2.5 s, almost all of it in the commit maintaining the ART indexes of the
two VARCHAR primary keys (36-byte keys). With 16-byte UUID keys the same delete commits in
well under a second. Prediction ids were always UUIDs; the type now says so.

DuckDB cannot change the type of a key column in place, so both tables are rebuilt: the old
one is renamed, the new one created with the same columns and constraints, rows copied with
one `INSERT ... SELECT`, the old one dropped. DuckDB has no foreign keys or views on these
tables (revision 0001), so nothing else has to move. Everything runs in the migration's
transaction, and an embedded workspace is backed up before any upgrade.

A workspace holding a prediction id that is not a UUID (only possible through a caller-chosen
id) stops the upgrade with an error naming the ids instead of losing rows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREDICTIONS_COLUMNS = """
    prediction_id {id_type} NOT NULL,
    pipeline_id VARCHAR NOT NULL,
    chain_id VARCHAR,
    dataset_name VARCHAR NOT NULL,
    model_name VARCHAR NOT NULL,
    model_class VARCHAR NOT NULL,
    fold_id VARCHAR NOT NULL,
    partition VARCHAR NOT NULL,
    val_score DOUBLE,
    test_score DOUBLE,
    train_score DOUBLE,
    metric VARCHAR NOT NULL,
    task_type VARCHAR NOT NULL,
    n_samples INTEGER,
    n_features INTEGER,
    scores JSON,
    best_params JSON,
    preprocessings VARCHAR,
    branch_id INTEGER,
    branch_name VARCHAR,
    exclusion_count INTEGER,
    exclusion_rate DOUBLE,
    created_at TIMESTAMP NOT NULL,
    refit_context VARCHAR,
    CONSTRAINT pk_predictions PRIMARY KEY (prediction_id),
    CONSTRAINT uq_predictions_natural_key
        UNIQUE (pipeline_id, chain_id, fold_id, partition, model_name, branch_id)
"""

ARRAYS_COLUMNS = """
    prediction_id {id_type} NOT NULL,
    y_true DOUBLE[],
    y_pred DOUBLE[],
    y_proba DOUBLE[][],
    sample_indices BIGINT[],
    weights DOUBLE[],
    CONSTRAINT pk_prediction_arrays PRIMARY KEY (prediction_id)
"""

TABLES = {"predictions": PREDICTIONS_COLUMNS, "prediction_arrays": ARRAYS_COLUMNS}


def _refuse_non_uuid_ids() -> None:
    bad = [
        row[0]
        for table in TABLES
        for row in op.get_bind().execute(
            sa.text(
                f"SELECT prediction_id FROM {table} "
                "WHERE TRY_CAST(prediction_id AS UUID) IS NULL LIMIT 5"
            )
        )
    ]
    if bad:
        raise RuntimeError(
            "revision 0005 stores prediction ids as UUIDs, but this workspace holds "
            f"prediction ids that are not UUIDs (for example {bad!r}); "
            "rename them to UUIDs or stay at revision 0004"
        )


def _rebuild(id_type: str) -> None:
    for table, columns in TABLES.items():
        names = [
            line.strip().split()[0]
            for line in columns.strip().splitlines()
            if line.strip() and not line.strip().startswith(("CONSTRAINT", "UNIQUE"))
        ]
        column_list = ", ".join(names)
        op.execute(f"ALTER TABLE {table} RENAME TO {table}__old")
        op.execute(f"CREATE TABLE {table} ({columns.format(id_type=id_type)})")
        op.execute(f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM {table}__old")
        op.execute(f"DROP TABLE {table}__old")


def upgrade() -> None:
    if op.get_bind().dialect.name != "duckdb":
        return
    _refuse_non_uuid_ids()
    _rebuild("UUID")


def downgrade() -> None:
    if op.get_bind().dialect.name != "duckdb":
        return
    _rebuild("VARCHAR")
