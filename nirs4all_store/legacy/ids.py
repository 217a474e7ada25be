"""Prediction ids of legacy workspaces as this store keys them: UUIDs (revision 0005).

nirs4all 0.8 writes 16-character ids (`str(uuid4())[:16]`), in its Parquet/SQLite layouts
and in DuckDB workspaces that hold a `prediction_arrays` table alike. Every adoption path
maps them as the adapter does (`validation.stored_prediction_id`: a UUID kept in its
canonical spelling, any other id its deterministic uuid5), so nirs4all finds an adopted
prediction by its own id.
"""

from __future__ import annotations

import contextlib

import duckdb

from nirs4all_store.validation import stored_prediction_id

__all__ = ["UDF_NAME", "register_prediction_id_udf", "stored_id_sql"]

UDF_NAME = "n4a_prediction_uuid"


def register_prediction_id_udf(con: duckdb.DuckDBPyConnection) -> None:
    """`n4a_prediction_uuid(VARCHAR)` on `con` (NULL stays NULL without a call)."""
    with contextlib.suppress(duckdb.Error):  # already registered on this connection
        con.create_function(UDF_NAME, stored_prediction_id, ["VARCHAR"], "VARCHAR")


def stored_id_sql(column: str) -> str:
    """SQL of the stored id of `column` (a quoted name), canonical (lowercase, hyphenated)
    as `stored_prediction_id` returns it. UUIDs skip the Python call: 10x
    faster on 200k UUID ids (0.07 s vs 0.68 s, measured); DuckDB's UUID cast accepts only
    spellings Python's `uuid.UUID` accepts too (hyphens, none, braces), so both agree."""
    return (
        f"CASE WHEN TRY_CAST({column} AS UUID) IS NOT NULL "
        f"THEN TRY_CAST({column} AS UUID)::VARCHAR "
        f"ELSE {UDF_NAME}({column}::VARCHAR) END"
    )
