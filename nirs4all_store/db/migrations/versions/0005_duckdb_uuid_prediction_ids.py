"""Prediction ids as DuckDB's native UUID type, and a NULL-safe unique natural key.

1. UUID keys (DuckDB only). Measured on DuckDB 2.0 (benchmarks/bench_delete.py, issue 6):
   deleting a run of 100k predictions spent ~2.5 s, nearly all in the commit maintaining the
   ART indexes of the two VARCHAR primary keys (36-byte keys). With 16-byte UUID keys the
   same delete takes ~0.8 s. Prediction ids were always UUIDs; the type now says so.
2. `predictions.natural_key` (every backend): the natural key (pipeline, chain, fold,
   partition, model, branch) as one UUID, unique. The revision-0001 UNIQUE over those six
   columns let a prediction be stored twice when its chain or branch is NULL (the usual
   case: NULLs are distinct in a UNIQUE constraint on all three backends).

DuckDB cannot change a key column's type or constraints in place, so both prediction tables
are rebuilt there: the old one renamed, the new one created, rows copied with one
`INSERT ... SELECT` (the key computed in SQL), the old one dropped. DuckDB has no foreign keys
or views on these tables (revision 0001), so nothing else moves. SQLite and PostgreSQL get
a nullable column, filled row by row here, and a unique index (SQLite cannot add a
constraint to an existing table; the old constraint stays there, harmless). Everything runs
in the migration's transaction, and an embedded workspace is backed up before any upgrade.

A workspace holding a prediction id that is not a UUID (only possible through a
caller-chosen id) or two predictions with one natural key stops the upgrade with an error
naming them, instead of losing rows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of `repositories.predictions.natural_key` / `NATURAL_KEY_SQL` (a migration must
# not change when the package does; a test checks that the three agree).
KEY_FIELDS = ("pipeline_id", "chain_id", "fold_id", "partition", "model_name", "branch_id")
NATURAL_KEY_SQL = (
    "md5(concat_ws(chr(31), pipeline_id, coalesce(chain_id, ''), fold_id, partition, "
    "model_name, coalesce(CAST(branch_id AS VARCHAR), '')))::UUID"
)


def natural_key(row: Sequence[object]) -> str:
    text = "\x1f".join("" if value is None else str(value) for value in row)
    return str(uuid.UUID(bytes=hashlib.md5(text.encode(), usedforsecurity=False).digest()))


PREDICTION_COLUMNS = """
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
"""
COPIED = [
    line.strip().split()[0] for line in PREDICTION_COLUMNS.strip().splitlines() if line.strip()
]
PREDICTIONS_AT_HEAD = (
    PREDICTION_COLUMNS.format(id_type="UUID")
    + """
    natural_key UUID,
    CONSTRAINT pk_predictions PRIMARY KEY (prediction_id),
    CONSTRAINT uq_predictions_natural_key_uuid UNIQUE (natural_key)
"""
)
PREDICTIONS_AT_0004 = (
    PREDICTION_COLUMNS.format(id_type="VARCHAR")
    + """
    CONSTRAINT pk_predictions PRIMARY KEY (prediction_id),
    CONSTRAINT uq_predictions_natural_key
        UNIQUE (pipeline_id, chain_id, fold_id, partition, model_name, branch_id)
"""
)
ARRAYS = """
    prediction_id {id_type} NOT NULL,
    y_true DOUBLE[],
    y_pred DOUBLE[],
    y_proba DOUBLE[][],
    sample_indices BIGINT[],
    weights DOUBLE[],
    CONSTRAINT pk_prediction_arrays PRIMARY KEY (prediction_id)
"""
ARRAY_COLUMNS = "prediction_id, y_true, y_pred, y_proba, sample_indices, weights"


def _rows(sql: str) -> list[tuple[object, ...]]:
    return [tuple(row) for row in op.get_bind().execute(sa.text(sql))]


def _refuse(problem: str, examples: list[tuple[object, ...]]) -> None:
    if examples:
        raise RuntimeError(
            f"revision 0005 cannot upgrade this workspace: {problem} (for example "
            f"{examples!r}); fix them at revision 0004 (delete_prediction) and upgrade again. "
            "Nothing was changed."
        )


def _refuse_duplicate_keys(key_sql: str) -> None:
    _refuse(
        "several predictions share one natural key (pipeline, chain, fold, partition, model, "
        "branch)",
        _rows(
            f"SELECT {', '.join(KEY_FIELDS)}, count(*) FROM predictions "
            f"GROUP BY {key_sql}, {', '.join(KEY_FIELDS)} HAVING count(*) > 1 LIMIT 5"
        ),
    )


def _rebuild_duckdb(predictions_ddl: str, id_type: str, with_key: bool) -> None:
    columns = ", ".join(COPIED)
    op.execute("ALTER TABLE predictions RENAME TO predictions__old")
    op.execute(f"CREATE TABLE predictions ({predictions_ddl})")
    if with_key:
        op.execute(
            f"INSERT INTO predictions ({columns}, natural_key) "
            f"SELECT {columns}, {NATURAL_KEY_SQL} FROM predictions__old"
        )
    else:
        op.execute(f"INSERT INTO predictions ({columns}) SELECT {columns} FROM predictions__old")
    op.execute("DROP TABLE predictions__old")
    op.execute("ALTER TABLE prediction_arrays RENAME TO prediction_arrays__old")
    op.execute(f"CREATE TABLE prediction_arrays ({ARRAYS.format(id_type=id_type)})")
    op.execute(
        f"INSERT INTO prediction_arrays ({ARRAY_COLUMNS}) "
        f"SELECT {ARRAY_COLUMNS} FROM prediction_arrays__old"
    )
    op.execute("DROP TABLE prediction_arrays__old")


def upgrade() -> None:
    if op.get_bind().dialect.name == "duckdb":
        for table in ("predictions", "prediction_arrays"):
            _refuse(
                f"{table} holds prediction ids that are not UUIDs",
                _rows(
                    f"SELECT prediction_id FROM {table} "
                    "WHERE TRY_CAST(prediction_id AS UUID) IS NULL LIMIT 5"
                ),
            )
        _refuse_duplicate_keys(NATURAL_KEY_SQL)
        _rebuild_duckdb(PREDICTIONS_AT_HEAD, "UUID", with_key=True)
        return
    op.add_column("predictions", sa.Column("natural_key", sa.String(), nullable=True))
    table = sa.table(
        "predictions",
        sa.column("prediction_id"),
        sa.column("natural_key"),
        *(sa.column(name) for name in KEY_FIELDS),
    )
    rows = op.get_bind().execute(sa.select(table.c.prediction_id, *table.c[KEY_FIELDS])).all()
    if rows:
        op.get_bind().execute(
            sa.update(table)
            .where(table.c.prediction_id == sa.bindparam("pid"))
            .values(natural_key=sa.bindparam("key")),
            [{"pid": row[0], "key": natural_key(row[1:])} for row in rows],
        )
    _refuse_duplicate_keys("natural_key")
    op.create_index("ix_predictions_natural_key", "predictions", ["natural_key"], unique=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "duckdb":
        _rebuild_duckdb(PREDICTIONS_AT_0004, "VARCHAR", with_key=False)
        return
    op.drop_index("ix_predictions_natural_key", table_name="predictions")
    op.drop_column("predictions", "natural_key")
