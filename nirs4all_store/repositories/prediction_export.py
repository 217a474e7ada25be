"""Predictions to Parquet: DuckDB streams the result with `COPY ... TO (FORMAT parquet)`
(500k rows in 0.15 s: STACK_FACTS), the other backends go through pyarrow. Columns and
types are those of `query_predictions` (JSON as text, timestamps UTC)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from nirs4all_store.durable import atomic_target
from nirs4all_store.models import Prediction, PredictionArrays
from nirs4all_store.repositories.base import arrow_type

T = Prediction.__table__
A = PredictionArrays.__table__

#: Array columns `include_arrays=True` adds, with their Arrow types.
ARRAY_COLUMNS = {
    "y_true": pa.list_(pa.float64()),
    "y_pred": pa.list_(pa.float64()),
    "y_proba": pa.list_(pa.list_(pa.float64())),
}


def write_parquet(
    session: Session, path: Path, filtered: sa.Select[Any], table: Any, include_arrays: bool
) -> None:
    """Write the rows of `filtered` (a filtered select over predictions) to `path`,
    atomically. `table` is a callable giving the same rows as an Arrow table (non-DuckDB)."""
    connection = session.connection()
    if connection.dialect.name == "duckdb":
        query = _duckdb_select(filtered, include_arrays)
        sql = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
        raw = connection.connection.driver_connection
        with atomic_target(path) as tmp:
            target = str(tmp).replace("'", "''")
            raw.execute(f"COPY ({sql}) TO '{target}' (FORMAT parquet)")
        return
    import pyarrow.parquet as pq  # deferred: only exports need it

    arrow = table()
    with atomic_target(path) as tmp:
        pq.write_table(arrow, tmp)


def _duckdb_select(filtered: sa.Select[Any], include_arrays: bool) -> sa.Select[Any]:
    """`filtered` with casts giving the same Arrow types as `query_predictions`."""
    columns: list[Any] = []
    for column in T.columns:
        kind = arrow_type(column)
        if pa.types.is_timestamp(kind):
            # Stored as naive UTC; TIMESTAMPTZ (session TimeZone is UTC) marks it as UTC.
            columns.append(sa.cast(column, sa.DateTime(timezone=True)).label(column.name))
        elif pa.types.is_int64(kind):
            columns.append(sa.cast(column, sa.BigInteger).label(column.name))
        elif pa.types.is_string(kind):
            columns.append(sa.cast(column, sa.String).label(column.name))
        else:
            columns.append(column)
    if include_arrays:
        columns.extend(A.c[name] for name in ARRAY_COLUMNS)
        source = T.outerjoin(A, A.c.prediction_id == T.c.prediction_id)
        query = filtered.with_only_columns(*columns).select_from(source)
    else:
        query = filtered.with_only_columns(*columns)
    return query.order_by(T.c.created_at, T.c.prediction_id)


def with_arrays(table: pa.Table, arrays: Mapping[str, Mapping[str, Any]]) -> pa.Table:
    """`table` with the array columns appended (None where a prediction has none)."""
    ids = table.column("prediction_id").to_pylist()
    for name, kind in ARRAY_COLUMNS.items():
        values = []
        for pid in ids:
            value = arrays.get(pid, {}).get(name)
            values.append(None if value is None else np.asarray(value).tolist())
        table = table.append_column(name, pa.array(values, type=kind))
    return table
