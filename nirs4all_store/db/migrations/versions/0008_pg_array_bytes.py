"""prediction_arrays on PostgreSQL: array columns hold raw little-endian bytes (`bytea`).

The bytes are those SQLite stores (`types.encode_array_bytes`: the items, 2-D prefixed by
the column count as int64). Measured on one prediction with 2 x 1e7 doubles (issue 15,
item 11): a `DOUBLE PRECISION[]` read spent ~0.8 s in the server's `array_send` and moved
~240 MB (a 4-byte length per item), 2.7-2.9x SQLite; bytea moves the 160 MB as they are.

Existing rows are converted in Python, in batches of `_BATCH_ITEMS` items: PostgreSQL 15
has no SQL function that reverses byte order or reinterprets float8 as bytes, and numpy
decodes `array_send` exactly (NaN payloads, +-inf, -0.0, subnormals). The converted values
wait in a temporary table while `ALTER COLUMN ... TYPE` rewrites the table with NULLs (a
rewrite, so the old arrays' TOAST is freed, not left behind in dropped columns), then one
UPDATE puts them back. NULL arrays stay NULL; NULL items (never written by the store) read
as NaN, as the array read path did. Downgrade does the reverse. Values cross in binary
format (every bit kept) through the psycopg 3 connection under the migration's one. Both
ways keep STORAGE EXTERNAL (revision 0007). DuckDB, SQLite: no-op.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The array columns of `prediction_arrays`: (dimensions, item dtype), frozen here.
ARRAY_COLUMNS = {
    "y_true": (1, "float64"),
    "y_pred": (1, "float64"),
    "y_proba": (2, "float64"),
    "sample_indices": (1, "int64"),
    "weights": (1, "float64"),
}
_TABLE = "prediction_arrays"
_STAGE = "n4a_store_0008_stage"
_BATCH_ITEMS = 2_000_000  # items converted per round trip (16 MB as bytes)
_PG_ELEMENTS = {701: ">f8", 20: ">i8"}  # float8, int8 (pg_type oids)
_PG_SCALARS = {701: ">d", 700: ">f", 20: ">q", 23: ">i", 21: ">h"}
_PG_OIDS = {"float64": 701, "int64": 20}
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_COPY_NULL = struct.pack(">i", -1)


def _native_sql(ndim: int, dtype: str) -> str:
    return ("BIGINT" if dtype == "int64" else "DOUBLE PRECISION") + "[]" * ndim


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _convert(
        stage_type=lambda ndim, dtype: "BYTEA",
        items_sql="coalesce(cardinality({c}), 0)",
        read_sql="array_send({c})",
        encode=lambda raw, ndim, dtype: _to_bytes(_from_array_send(raw, ndim, np.dtype(dtype))),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _convert(
        stage_type=_native_sql,
        items_sql="coalesce(octet_length({c}), 0) / 8",
        read_sql="{c}",
        encode=lambda raw, ndim, dtype: _to_array_send(_from_bytes(raw, ndim, np.dtype(dtype))),
    )


def _convert(
    stage_type: Callable[[int, str], str],
    items_sql: str,
    read_sql: str,
    encode: Callable[[bytes, int, str], bytes],
) -> None:
    """Stage every row's converted arrays, retype the columns (table rewritten with NULLs),
    put the staged values back. Values move in binary format both ways (binary cursor,
    binary COPY): text format turns NaN payloads and -NaN into the one NaN."""
    conn = op.get_bind()
    raw = conn.connection.driver_connection
    stage_cols = ", ".join(f"{c} {stage_type(*spec)}" for c, spec in ARRAY_COLUMNS.items())
    storage = ", ".join(f"ALTER COLUMN {c} SET STORAGE EXTERNAL" for c in ARRAY_COLUMNS)
    conn.execute(sa.text(f"DROP TABLE IF EXISTS pg_temp.{_STAGE}"))
    conn.execute(
        sa.text(
            f"CREATE TEMPORARY TABLE {_STAGE} (prediction_id VARCHAR PRIMARY KEY, "
            f"{stage_cols}) ON COMMIT DROP"
        )
    )
    conn.execute(sa.text(f"ALTER TABLE {_STAGE} {storage}"))
    reads = ", ".join(read_sql.format(c=c) for c in ARRAY_COLUMNS)
    select = f"SELECT prediction_id, {reads} FROM {_TABLE} WHERE prediction_id = ANY(%s)"
    copy_in = (
        f"COPY {_STAGE} (prediction_id, {', '.join(ARRAY_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
    )
    for ids in _batches(conn, " + ".join(items_sql.format(c=c) for c in ARRAY_COLUMNS)):
        with raw.cursor() as cursor:
            cursor.execute(select, [ids], binary=True)
            rows = cursor.fetchall()
        with raw.cursor() as cursor, cursor.copy(copy_in) as copy:
            copy.write(_COPY_HEADER)
            for prediction_id, *values in rows:
                copy.write(_copy_row(prediction_id, values, encode))
            copy.write(_COPY_TRAILER)
    retype = ", ".join(
        f"ALTER COLUMN {c} TYPE {stage_type(*spec)} USING NULL" for c, spec in ARRAY_COLUMNS.items()
    )
    conn.execute(sa.text(f"ALTER TABLE {_TABLE} {retype}"))
    conn.execute(sa.text(f"ALTER TABLE {_TABLE} {storage}"))
    assign = ", ".join(f"{c} = s.{c}" for c in ARRAY_COLUMNS)
    conn.execute(
        sa.text(
            f"UPDATE {_TABLE} AS t SET {assign} FROM {_STAGE} AS s "
            "WHERE t.prediction_id = s.prediction_id"
        )
    )
    conn.execute(sa.text(f"DROP TABLE {_STAGE}"))


def _copy_row(
    prediction_id: str, values: Sequence[bytes | None], encode: Callable[[bytes, int, str], bytes]
) -> bytes:
    """One row of the binary COPY into the stage table: the id, then each converted array."""
    key = prediction_id.encode("utf-8")
    parts = [struct.pack(">hi", 1 + len(ARRAY_COLUMNS), len(key)), key]
    for (column, spec), value in zip(ARRAY_COLUMNS.items(), values, strict=True):
        if value is None:
            parts.append(_COPY_NULL)
            continue
        try:
            field = encode(bytes(value), *spec)
        except (ValueError, TypeError, struct.error) as exc:
            raise RuntimeError(
                f"revision {revision} cannot convert prediction_arrays.{column} of prediction "
                f"{prediction_id!r} ({exc}); nothing was changed"
            ) from exc
        parts += [struct.pack(">i", len(field)), field]
    return b"".join(parts)


def _batches(conn: sa.Connection, items_sql: str) -> Iterator[list[str]]:
    """Prediction ids in groups of about `_BATCH_ITEMS` array items (a larger row alone)."""
    query = sa.text(f"SELECT prediction_id, {items_sql} FROM {_TABLE} ORDER BY prediction_id")
    ids: list[str] = []
    items = 0
    for prediction_id, count in conn.execute(query).all():  # all: the batches use conn too
        if ids and items + int(count) > _BATCH_ITEMS:
            yield ids
            ids, items = [], 0
        ids.append(prediction_id)
        items += int(count)
    if ids:
        yield ids


def _to_bytes(arr: np.ndarray) -> bytes:
    """`types.encode_array_bytes` as of this revision: little-endian items, 2-D prefixed by
    the column count (int64)."""
    items = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
    if arr.ndim == 2:
        return np.int64(arr.shape[1]).astype("<i8").tobytes() + items
    return items


def _from_bytes(raw: bytes, ndim: int, dtype: np.dtype) -> np.ndarray:
    little = dtype.newbyteorder("<")
    if ndim == 2:
        n_cols = int(np.frombuffer(raw, dtype="<i8", count=1)[0])
        flat = np.frombuffer(raw, dtype=little, offset=8).astype(dtype)
        return flat.reshape(-1, n_cols) if n_cols else flat.reshape(0, 0)
    return np.frombuffer(raw, dtype=little).astype(dtype)


def _to_array_send(arr: np.ndarray) -> bytes:
    """PostgreSQL's binary array format of `arr` (what `array_send` gives, COPY takes)."""
    oid = _PG_OIDS[arr.dtype.name]
    if arr.size == 0:
        return struct.pack(">iii", 0, 0, oid)
    sizes = b"".join(struct.pack(">ii", n, 1) for n in arr.shape)
    items = np.empty(arr.size, dtype=[("length", ">i4"), ("value", _PG_ELEMENTS[oid])])
    items["length"] = 8
    items["value"] = arr.reshape(-1)
    return struct.pack(">iii", arr.ndim, 0, oid) + sizes + items.tobytes()


def _from_array_send(raw: bytes, ndim: int, dtype: np.dtype) -> np.ndarray:
    """An array from PostgreSQL's binary array format: a header (dimensions, null flag,
    element type, sizes) then (int32 length, big-endian value) per item."""
    dims, has_null, oid = struct.unpack_from(">iii", raw, 0)
    if dims == 0:
        return np.empty((0,) * ndim, dtype=dtype)
    shape = [struct.unpack_from(">i", raw, 12 + 8 * i)[0] for i in range(dims)]
    body = memoryview(raw)[12 + 8 * dims :]
    count = int(np.prod(shape))
    element = _PG_ELEMENTS.get(oid)
    if element is None or has_null:  # NULL items (never written by the store) or odd types
        flat = np.asarray(list(_scalars(body, count, oid)), dtype=dtype)
    else:
        items = np.frombuffer(body, dtype=[("length", ">i4"), ("value", element)], count=count)
        flat = items["value"].astype(dtype)
    arr = flat.reshape(shape)
    if arr.ndim == 1 and ndim == 2:
        arr = arr.reshape(-1, 1)
    if arr.ndim != ndim:
        raise ValueError(f"expected a {ndim}-D array, got shape {arr.shape}")
    return arr


def _scalars(body: memoryview, count: int, oid: int) -> Iterator[float | int]:
    fmt = _PG_SCALARS.get(oid)
    if fmt is None:
        raise ValueError(f"array element type oid {oid} is not numeric")
    offset = 0
    for _ in range(count):
        (length,) = struct.unpack_from(">i", body, offset)
        offset += 4
        yield math.nan if length < 0 else struct.unpack_from(fmt, body, offset)[0]
        offset += max(length, 0)
