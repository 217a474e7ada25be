"""Portable column types: UTC timestamps, NaN-free JSON, float64 arrays and UUID keys.

Measured (STACK_FACTS): DuckDB's TIMESTAMPTZ follows the process time zone and SQLite drops
offsets, so timestamps are stored as naive UTC and handed back UTC-aware. NaN/inf inside
JSON breaks SQLite JSON queries and is rejected by PostgreSQL, so it is written as null.
`ARRAY(Double)` works on DuckDB and PostgreSQL only; SQLite stores the float64 bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import struct
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

UTC = dt.timezone.utc

NATIVE_ARRAY_DIALECTS = frozenset({"duckdb", "postgresql"})


def utcnow() -> dt.datetime:
    """The current time, UTC-aware (what every created_at/completed_at holds)."""
    return dt.datetime.now(UTC)


def to_utc_naive(value: dt.datetime) -> dt.datetime:
    """Normalise an aware datetime to naive UTC; a naive one is taken as UTC already."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Stored as naive UTC (identical on every backend and time zone), returned UTC-aware."""

    impl = sa.DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        return to_utc_naive(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite hands text back through some raw paths
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


_JSON_TEXT = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def json_text(value: Any) -> str:
    """The one JSON text form the store writes (compact, strict): every write path and
    every tabular read produce the same spelling, so stored text and exports compare."""
    return _JSON_TEXT.encode(value)


class JSONText(str):
    """JSON already encoded in the store's one spelling (`json_text`): the bulk path
    encodes a document once, while validating it, and inserts the text as it is."""

    __slots__ = ()


def json_document(value: Any) -> JSONText:
    """`value` checked and encoded as `json_text(sanitize_json(value))`, faster: the C
    encoder alone when the document is plain JSON (no NaN/inf, no numpy); TypeError for what
    JSON cannot hold."""
    try:
        return JSONText(_JSON_TEXT.encode(value))
    except (ValueError, TypeError):  # NaN/inf, numpy values, odd keys: the careful walk
        return JSONText(_JSON_TEXT.encode(sanitize_json(value)))


def _json_key(key: Any) -> str:
    """A dict key as JSON spells it (True -> "true", None -> "null", 2 -> "2")."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return float.__repr__(key) if isinstance(key, float) else _JSON_TEXT.encode(key)
    return str(key)


def sanitize_json(value: Any) -> Any:
    """Replace NaN/inf floats by None and numpy scalars/arrays by Python values, recursively;
    TypeError for what JSON cannot hold. One pass: it is on the bulk write path."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_json_key(k): sanitize_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitize_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return sanitize_json(value.tolist())
    if isinstance(value, np.generic):
        return sanitize_json(value.item())
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class _DuckDBUUID(sa.types.UserDefinedType[str]):
    """DuckDB's native 128-bit UUID column type."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "UUID"


class UUIDString(sa.TypeDecorator[str]):
    """A UUID handed around as its canonical string: native UUID on DuckDB, text elsewhere.

    Measured on DuckDB 2.0: deleting 100k rows keyed by VARCHAR UUIDs spends ~1 s per key
    index in the commit (ART maintenance on 36-byte keys); with the native 16-byte type the
    whole delete commits in ~0.5 s. Values must be UUIDs (`repositories.base.check_uuid`).
    """

    impl = sa.String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "duckdb":
            return _DuckDBUUID()
        return dialect.type_descriptor(sa.String())

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(value)


class JSONValue(sa.TypeDecorator[Any]):
    """JSON everywhere (JSONB on PostgreSQL, comparable there), NaN/inf written as null."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        return dialect.type_descriptor(sa.JSON())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, JSONText):  # encoded by the bulk path: the driver encodes again
            return json.loads(value)
        return sanitize_json(value)


class Float64Array(sa.TypeDecorator[np.ndarray]):
    """A float64 numpy array of 1 or 2 dimensions.

    DuckDB/PostgreSQL: native ``DOUBLE[]`` (``DOUBLE[][]`` for 2-D, so y_proba comes back
    2-D). SQLite: little-endian float64 bytes, 2-D prefixed by the column count (int64).
    """

    impl = sa.LargeBinary
    cache_ok = True

    def __init__(self, ndim: int = 1, dtype: str = "float64") -> None:
        super().__init__()
        if ndim not in (1, 2):
            raise ValueError(f"ndim must be 1 or 2, got {ndim}")
        self.ndim = ndim
        self.dtype = np.dtype(dtype)

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in NATIVE_ARRAY_DIALECTS:
            item: sa.types.TypeEngine[Any] = (
                sa.BigInteger() if self.dtype.kind == "i" else sa.Double()
            )
            return dialect.type_descriptor(postgresql.ARRAY(item, dimensions=self.ndim))
        return dialect.type_descriptor(sa.LargeBinary())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        arr = np.asarray(value, dtype=self.dtype)
        if arr.ndim != self.ndim:
            raise ValueError(f"expected a {self.ndim}-D array, got shape {arr.shape}")
        if dialect.name in NATIVE_ARRAY_DIALECTS:
            return arr.tolist()
        return encode_array_bytes(arr)

    def column_expression(self, colexpr: Any) -> Any:
        """Selected as `array_send(col)` on PostgreSQL: the array's binary wire format, which
        numpy decodes in one pass. psycopg built a Python list of floats instead (2 x 2e6
        doubles: 4.8 s in fetchone alone)."""
        return ArrayWire(colexpr, type_=self)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name == "postgresql":  # bytes of array_send: no ARRAY processing first
            return lambda value: self.process_result_value(value, dialect)
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: Any, dialect: Dialect) -> np.ndarray | None:
        if value is None:
            return None
        if isinstance(value, (bytes, bytearray, memoryview)):
            if dialect.name == "postgresql":
                return decode_pg_array(bytes(value), self.ndim, self.dtype)
            return decode_array_bytes(bytes(value), self.ndim, self.dtype)
        arr = np.asarray(value, dtype=self.dtype)
        if self.ndim == 2 and arr.ndim == 1 and arr.size == 0:
            arr = arr.reshape(0, 0)
        return arr


def encode_array_bytes(arr: np.ndarray) -> bytes:
    """SQLite storage of an array: raw little-endian items, 2-D prefixed by the column count."""
    arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    if arr.ndim == 2:
        return np.int64(arr.shape[1]).astype("<i8").tobytes() + arr.tobytes()
    return arr.tobytes()


def decode_array_bytes(raw: bytes, ndim: int, dtype: np.dtype) -> np.ndarray:
    """Inverse of `encode_array_bytes`."""
    little = dtype.newbyteorder("<")
    if ndim == 2:
        n_cols = int(np.frombuffer(raw[:8], dtype="<i8")[0])
        flat = np.frombuffer(raw[8:], dtype=little).astype(dtype)
        return flat.reshape(-1, n_cols) if n_cols else flat.reshape(0, 0)
    return np.frombuffer(raw, dtype=little).astype(dtype)


class ArrayWire(FunctionElement[Any]):
    """`array_send(x)` on PostgreSQL, `x` itself elsewhere (see `Float64Array`)."""

    name = "array_wire"
    inherit_cache = True

    def __init__(self, expr: Any, type_: sa.types.TypeEngine[Any]) -> None:
        super().__init__(expr)
        self.type = type_


@compiles(ArrayWire)
def _array_wire_default(element: ArrayWire, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(ArrayWire, "postgresql")
def _array_wire_postgresql(element: ArrayWire, compiler: Any, **kw: Any) -> str:
    return f"array_send({compiler.process(element.clauses, **kw)})"


_PG_ELEMENT_TYPES = {701: ">f8", 20: ">i8"}  # float8, int8 (pg_type oids)


def decode_pg_array(raw: bytes, ndim: int, dtype: np.dtype) -> np.ndarray:
    """An array from PostgreSQL's binary array format (`array_send`): a header (dimensions,
    null flag, element type, sizes) then (int32 length, big-endian value) per element."""
    dims, has_null, oid = struct.unpack_from(">iii", raw, 0)
    shape = [struct.unpack_from(">i", raw, 12 + 8 * i)[0] for i in range(dims)]
    if dims == 0:
        return np.empty((0,) * ndim, dtype=dtype)
    element = _PG_ELEMENT_TYPES.get(oid)
    body = memoryview(raw)[12 + 8 * dims :]
    count = int(np.prod(shape))
    if element is None or has_null:  # NULL elements (never written by the store) or odd types
        values = []
        offset = 0
        for _ in range(count):
            (length,) = struct.unpack_from(">i", body, offset)
            offset += 4
            values.append(math.nan if length < 0 else _pg_scalar(body, offset, length, oid))
            offset += max(length, 0)
        flat = np.asarray(values, dtype=dtype)
    else:
        items = np.frombuffer(body, dtype=[("length", ">i4"), ("value", element)], count=count)
        flat = items["value"].astype(dtype)
    arr = flat.reshape(shape)
    if arr.ndim == 1 and ndim == 2:
        arr = arr.reshape(-1, 1)
    return arr


def _pg_scalar(body: memoryview, offset: int, length: int, oid: int) -> float:
    fmt = {701: ">d", 700: ">f", 20: ">q", 23: ">i", 21: ">h"}.get(oid)
    if fmt is None:
        raise ValueError(f"array element type oid {oid} is not numeric")
    return float(struct.unpack_from(fmt, body, offset)[0])
