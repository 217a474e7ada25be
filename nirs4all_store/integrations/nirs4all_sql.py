"""Raw SQL and polars frames the way nirs4all 0.8.x reads its store.

nirs4all runs SQL of its own through the store's private `_fetch_pl(sql, params)`:
`Predictions.store_stats()` / `Predictions.query(sql)` in every 0.8.x release, and in 0.8.11
the refit selection (`SELECT rowid AS _rowid, * FROM pipelines WHERE run_id = ? AND
dataset_name = ? ORDER BY rowid ASC`; traced, /work/n4a/TRACE.md). 0.8.0-0.8.3 write `$1`
placeholders, 0.8.4+ write `?`: both become SQLAlchemy bind parameters here, so the same text
runs on DuckDB, SQLite and PostgreSQL. PostgreSQL has no `rowid`: there it becomes the row's
rank by `created_at` (the insertion order nirs4all relies on).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa

__all__ = ["arrow_to_polars", "rewrite_sql", "rows_to_polars"]

_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\$(\d+)|\?|\browid\b", re.IGNORECASE)


def rewrite_sql(sql: str, params: Sequence[Any] | None, dialect: str) -> tuple[str, dict[str, Any]]:
    """`sql` with `$n` / `?` placeholders as named bind parameters, and their values."""
    values = list(params or [])
    bound: dict[str, Any] = {}
    position = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal position
        token = match.group(0)
        if token[0] in "'\"":
            return token  # a quoted literal or identifier: left as written
        if token.lower() == "rowid":
            if dialect != "postgresql":
                return token
            return "(ROW_NUMBER() OVER (ORDER BY created_at))"
        if match.group(1) is not None:
            index = int(match.group(1)) - 1
        else:
            index, position = position, position + 1
        if not 0 <= index < len(values):
            raise ValueError(
                f"SQL placeholder {token!r} has no parameter ({len(values)} given): {sql!r}"
            )
        name = f"p{index + 1}"
        bound[name] = _plain(values[index])
        return f":{name}"

    # Colons of the caller's SQL (casts, literals) are escaped: only ours are bind parameters.
    return _TOKENS.sub(replace, sql.replace(":", "\\:")), bound


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _cell(value: Any) -> Any:
    """A database value as polars takes it: UUIDs as text, JSON documents as JSON text."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    return value


def rows_to_polars(keys: Sequence[str], rows: Sequence[Sequence[Any]]) -> Any:
    """A `polars.DataFrame` of raw rows (columns in `keys` order)."""
    import polars as pl

    columns = {key: [_cell(row[i]) for row in rows] for i, key in enumerate(keys)}
    return pl.DataFrame(columns, strict=False)


def arrow_to_polars(table: pa.Table, json_columns: Sequence[str] = ()) -> Any:
    """A `polars.DataFrame` of one of the store's Arrow tables; JSON columns as text, as
    nirs4all's own store returns them."""
    import polars as pl

    for name in json_columns:
        if name in table.column_names and not pa.types.is_string(table.schema.field(name).type):
            values = [None if v is None else json.dumps(v) for v in table.column(name).to_pylist()]
            table = table.set_column(
                table.schema.get_field_index(name), name, pa.array(values, type=pa.string())
            )
    return pl.from_arrow(table)
