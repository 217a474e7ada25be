"""Helpers shared by the repositories: ids, input validation, rows to dicts and Arrow tables.

Repositories work over a caller's `Session` and never commit: the caller (the
`WorkspaceStore` facade or an application with its own Session) owns the transaction.
"""

from __future__ import annotations

import contextlib
import math
import os
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
    json_document,
    json_text,
    sanitize_json,
    to_utc_naive,
)

RUN_STATUSES = ("running", "completed", "failed")
PIPELINE_STATUSES = ("running", "completed", "failed")
PARTITIONS = ("train", "val", "test")
TASK_TYPES = ("regression", "classification")
LOG_LEVELS = ("debug", "info", "warning", "error")
FOLD_STRATEGIES = ("per_fold", "shared")


def new_id() -> str:
    return str(uuid.uuid4())


def new_ids(n: int) -> list[str]:
    """`n` random (version 4) UUID strings at once: ~0.6 us each against ~4 us for
    `str(uuid.uuid4())`, which is 40% of validating a prediction on the bulk path."""
    raw = bytearray(os.urandom(16 * n))
    raw[6::16] = bytes((b & 0x0F) | 0x40 for b in raw[6::16])  # version 4
    raw[8::16] = bytes((b & 0x3F) | 0x80 for b in raw[8::16])  # RFC 4122 variant
    h = raw.hex()
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-"
        f"{h[i + 16 : i + 20]}-{h[i + 20 : i + 32]}"
        for i in range(0, 32 * n, 32)
    ]


def check_id(field: str, value: Any, *, optional: bool = False) -> str | None:
    """Ids are non-empty strings; NaN, numbers and blanks are refused by name."""
    if value is None and optional:
        return None
    if type(value) is str and value and not value[0].isspace() and value.lower() != "nan":
        return value  # the common case, without the slower checks below (bulk-path speed)
    if not isinstance(value, str) or not value.strip() or value.strip().lower() == "nan":
        raise ValueError(f"{field} must be a non-empty id string, got {value!r}")
    return value


def uuid_or_none(value: Any) -> str | None:
    """The canonical spelling (lowercase, hyphenated) of a UUID string, None if it is not one.

    Lookups use it: an id that is not a UUID cannot name a stored prediction on any backend.
    """
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def check_uuid(field: str, value: Any) -> str:
    """A UUID id in its canonical spelling; anything else is refused by name.

    Prediction ids are UUIDs (native UUID keys on DuckDB, revision 0005); canonicalising on
    the way in keeps them identical on every backend."""
    canonical = uuid_or_none(value)
    if canonical is None:
        raise ValueError(f"{field} must be a UUID string (e.g. {new_id()!r}), got {value!r}")
    return canonical


def check_choice(field: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{field} must be one of {list(allowed)}, got {value!r}")
    return str(value)


def check_text(field: str, value: Any, *, optional: bool = False) -> str | None:
    if type(value) is str:
        return value
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string, got {type(value).__name__}: {value!r}")
    return value


def check_number(field: str, value: Any, *, optional: bool = True) -> float | None:
    """A real number; NaN means "missing" and is stored as NULL (NaN sorts above every number
    on DuckDB and PostgreSQL, SQLite turns it into NULL: NULL is the one portable form)."""
    if type(value) is float:
        return None if value != value else value  # NaN is the one value unequal to itself
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{field} must be a number, got {type(value).__name__}: {value!r}")
    number = float(value)
    return None if math.isnan(number) else number


def check_int(field: str, value: Any, *, optional: bool = True) -> int | None:
    if type(value) is int:
        return value
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and math.isfinite(value) and value == int(value):
            return int(value)
        raise TypeError(f"{field} must be an integer, got {type(value).__name__}: {value!r}")
    return int(value)


def check_json(field: str, value: Any, *, encoded: bool = False) -> Any:
    """A JSON-serialisable value (NaN/inf become null); TypeError names the field.

    `encoded=True` returns it already encoded (a `JSONText`, `types.json_document`): the
    bulk path then inserts the text as it is instead of encoding the document again."""
    if value is None:
        return None
    try:
        return json_document(value) if encoded else sanitize_json(value)
    except TypeError as exc:
        raise TypeError(f"{field} is not JSON-serialisable: {exc}") from None


def as_float_array(
    field: str, value: Any, *, ndim: int = 1, optional: bool = True
) -> np.ndarray | None:
    if value is None and optional:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{field} must be numeric, got {type(value).__name__}: {exc}") from None
    if ndim == 1 and arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != ndim:
        raise ValueError(f"{field} must be {ndim}-D, got shape {arr.shape}")
    return arr


def as_index_array(field: str, value: Any) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(
            f"{field} must be a 1-D integer array, got dtype {arr.dtype}, shape {arr.shape}"
        )
    return arr.astype(np.int64)


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
    missing = missing_ids(session, column, ids)
    if len(missing) == 1:
        raise KeyError(f"unknown {column.name} {missing[0]!r}")
    if missing:
        raise KeyError(f"unknown {column.name}(s) {missing}")


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
