"""Helpers shared by the repositories: ids, input validation, rows to dicts and Arrow tables.

Repositories work over a caller's `Session` and never commit: the caller (the
`WorkspaceStore` facade or an application with its own Session) owns the transaction.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from nirs4all_store.types import (
    Float64Array,
    JSONText,
    JSONValue,
    UTCDateTime,
    json_text,
    to_utc_naive,
)

# -- parents known to exist in the current transaction ------------------------------------
# Recording one pipeline inserts the pipeline, then its chain, predictions and logs, each
# checking its parent (DuckDB has no foreign keys). A parent this transaction inserted, or
# already looked up, cannot vanish before it commits (other transactions cannot delete a row
# they do not see, and a delete in this one forgets everything), so it is not looked up again.
_KNOWN = "nirs4all_store.known_ids"


def note_known(session: Session, table: str, ids: Iterable[str]) -> None:
    """Remember that rows with these ids exist in `table` for the rest of the transaction."""
    session.info.setdefault(_KNOWN, {}).setdefault(table, set()).update(ids)


def is_known(session: Session, table: str, id_: str) -> bool:
    known = session.info.get(_KNOWN)
    return known is not None and id_ in known.get(table, ())


def forget_known(session: Session) -> None:
    """After any delete: parents may be gone, look them up again."""
    session.info.pop(_KNOWN, None)


def missing_ids(session: Session, column: sa.Column[Any], ids: Iterable[str]) -> list[str]:
    """Which of `ids` have no row (one query per batch, not per id; known ones skipped)."""
    table = column.table.name
    wanted = sorted(i for i in set(ids) if not is_known(session, table, i))
    if not wanted:
        return []
    found: set[str] = set()
    for start in range(0, len(wanted), 5000):
        chunk = wanted[start : start + 5000]
        found.update(session.execute(sa.select(column).where(column.in_(chunk))).scalars())
    note_known(session, table, found)
    return [value for value in wanted if value not in found]


def require_ids(session: Session, column: sa.Column[Any], ids: Iterable[str]) -> None:
    """KeyError naming the `ids` that have no row (one query per batch; known ones skipped)."""
    _raise_missing(column, missing_ids(session, column, ids))


def _raise_missing(column: sa.Column[Any], missing: list[str]) -> None:
    if len(missing) == 1:
        raise KeyError(f"unknown {column.name} {missing[0]!r}")
    if missing:
        raise KeyError(f"unknown {column.name}(s) {missing}")


def require_parents(
    session: Session, wanted: Sequence[tuple[sa.Column[Any], Iterable[str]]]
) -> None:
    """`require_ids` for ids of several tables in one statement (a UNION ALL): a row call
    checking its pipeline and its chain pays one round trip, not two (~1-2 ms each on
    DuckDB). Large id sets go through `require_ids`, table by table."""
    pending = []
    for column, ids in wanted:
        table = column.table.name
        todo = sorted(i for i in set(ids) if not is_known(session, table, i))
        if todo:
            pending.append((column, todo))
    if len(pending) < 2 or any(len(todo) > 100 for _, todo in pending):
        for column, todo in pending:
            require_ids(session, column, todo)
        return
    parts = [
        sa.select(sa.literal(k).label("k"), sa.cast(column, sa.String).label("v")).where(
            column.in_(todo)
        )
        for k, (column, todo) in enumerate(pending)
    ]
    found: dict[int, set[str]] = {}
    for k, value in session.execute(sa.union_all(*parts)).all():
        found.setdefault(int(k), set()).add(str(value))
    for k, (column, todo) in enumerate(pending):
        present = found.get(k, set())
        note_known(session, column.table.name, present)
        _raise_missing(column, [i for i in todo if i not in present])


# -- bulk inserts ------------------------------------------------------------------------
#: Below this many rows an Arrow registration (~2-3 ms) costs more than DuckDB's executemany,
#: which runs one statement per row (~1 ms each).
ARROW_MIN_ROWS = 16


def insert_arrow_table(table: sa.Table, rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Validated row dicts (the keys of the first) as Arrow for DuckDB to insert from: JSON as
    its compact text, timestamps as naive UTC (DuckDB would shift aware ones by its session
    time zone)."""
    columns: dict[str, pa.Array] = {}
    for name in rows[0]:
        column_type = table.c[name].type
        values = [row.get(name) for row in rows]
        if isinstance(column_type, JSONValue):
            columns[name] = pa.array(
                [v if v is None or type(v) is JSONText else json_text(v) for v in values],
                pa.string(),
            )
        elif isinstance(column_type, UTCDateTime):
            first = values[0]
            if first is not None and all(v is first for v in values):  # one clock read/batch
                columns[name] = pa.repeat(
                    pa.scalar(to_utc_naive(first), pa.timestamp("us")), len(values)
                )
            else:
                columns[name] = pa.array(
                    [None if v is None else to_utc_naive(v) for v in values], pa.timestamp("us")
                )
        elif isinstance(column_type, (sa.Double, sa.Float)):
            columns[name] = pa.array(values, pa.float64(), from_pandas=False)
        elif isinstance(column_type, (sa.Integer, sa.BigInteger)):
            columns[name] = pa.array(values, pa.int64())
        else:
            columns[name] = pa.array(values, pa.string())
    return pa.table(columns)


def arrow_insert(
    raw: Any, table: str, data: pa.Table, computed: Mapping[str, str] | None = None
) -> None:
    """INSERT ... SELECT from an Arrow table registered on DuckDB's raw connection (inside
    the SQLAlchemy transaction: same connection); `computed` adds columns as SQL
    expressions over the Arrow columns (column -> expression, trusted constants only)."""
    name = f"_n4a_{table}_{uuid.uuid4().hex[:8]}"
    cols = [f'"{c}"' for c in data.column_names]
    exprs = list(cols)
    for column, expression in (computed or {}).items():
        cols.append(f'"{column}"')
        exprs.append(expression)
    raw.register(name, data)
    try:
        raw.execute(
            f'INSERT INTO {table} ({", ".join(cols)}) SELECT {", ".join(exprs)} FROM "{name}"'
        )
    except Exception:
        # the failed INSERT aborted the transaction: unregistering would raise "transaction
        # is aborted" and hide the real error (e.g. a duplicate key)
        with contextlib.suppress(Exception):
            raw.unregister(name)
        raise
    raw.unregister(name)


def insert_rows(session: Session, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert validated rows in one go: an Arrow scan on DuckDB (from `ARROW_MIN_ROWS` rows),
    Core executemany elsewhere (insertmanyvalues batches on PostgreSQL and SQLite)."""
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name == "duckdb" and len(rows) >= ARROW_MIN_ROWS:
        arrow_insert(conn.connection.driver_connection, table.name, insert_arrow_table(table, rows))
    else:
        session.execute(sa.insert(table), list(rows))


def arrow_type(column: sa.Column[Any]) -> pa.DataType:
    col_type = column.type
    if isinstance(col_type, UTCDateTime):
        return pa.timestamp("us", tz="UTC")
    if isinstance(col_type, JSONValue):
        return pa.string()
    if isinstance(col_type, Float64Array):
        item = pa.int64() if col_type.dtype.kind == "i" else pa.float64()
        return pa.list_(pa.list_(item)) if col_type.ndim == 2 else pa.list_(item)
    if isinstance(col_type, (sa.Double, sa.Float)):
        return pa.float64()
    if isinstance(col_type, (sa.Integer, sa.BigInteger)):
        return pa.int64()
    return pa.string()


def _arrow_value(column: sa.Column[Any], value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column.type, JSONValue):
        return json_text(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def rows_to_arrow(
    columns: Sequence[sa.Column[Any]],
    rows: Sequence[Sequence[Any]],
    names: Sequence[str] | None = None,
) -> pa.Table:
    """A pyarrow Table of `rows` with a schema taken from the columns' types.

    JSON columns become JSON text (one type per column whatever the documents hold).
    """
    names = list(names or [c.name for c in columns])
    arrays = []
    for idx, column in enumerate(columns):
        arrays.append(
            pa.array([_arrow_value(column, row[idx]) for row in rows], type=arrow_type(column))
        )
    return pa.Table.from_arrays(arrays, names=names)
