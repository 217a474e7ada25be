"""Portable column types: UTC timestamps, NaN-free JSON, float64 arrays and UUID keys.

Measured (STACK_FACTS): DuckDB's TIMESTAMPTZ follows the process time zone and SQLite drops
offsets, so timestamps are stored as naive UTC and handed back UTC-aware. NaN/inf inside
JSON breaks SQLite JSON queries and is rejected by PostgreSQL, so it is written as null.
Arrays are native lists on DuckDB only; SQLite and PostgreSQL (revision 0008) store the
float64 bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

UTC = dt.timezone.utc

#: Dialects with array columns; PostgreSQL had them too up to revision 0007 (see 0008).
NATIVE_ARRAY_DIALECTS = frozenset({"duckdb"})


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
    """A float64 (or int64) numpy array of 1 or 2 dimensions.

    DuckDB: native ``DOUBLE[]`` (``DOUBLE[][]`` for 2-D, ``BIGINT[]`` for int64). SQLite
    BLOB and, from revision 0008, PostgreSQL ``bytea``: the raw little-endian items, 2-D
    prefixed by the column count (int64). Measured on one prediction with 2 x 1e7 doubles:
    reading PostgreSQL's ``DOUBLE PRECISION[]`` spent ~0.8 s in the server's `array_send`
    and moved ~240 MB (a 4-byte length per item); the bytes need neither.
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

    def direct_processor(self, dialect: Dialect) -> Any:
        """The bind processor of `db.direct` statements: on DuckDB, `process_bind_param`
        alone (the ARRAY impl's processor converts every item again after `tolist()` did:
        0.3 ms per 400 items, measured); None elsewhere (the usual processor)."""
        if dialect.name not in NATIVE_ARRAY_DIALECTS:
            return None
        return lambda value: self.process_bind_param(value, dialect)

    def process_result_value(self, value: Any, dialect: Dialect) -> np.ndarray | None:
        if value is None:
            return None
        if isinstance(value, (bytes, bytearray, memoryview)):
            return decode_array_bytes(value, self.ndim, self.dtype)
        arr = np.asarray(value, dtype=self.dtype)
        if self.ndim == 2 and arr.ndim == 1 and arr.size == 0:
            arr = arr.reshape(0, 0)
        return arr


def array_bytes_parts(arr: np.ndarray) -> tuple[bytes, memoryview]:
    """The stored bytes of an array in two parts, not joined: the prefix (the column count
    of a 2-D array, else empty) and the items (little-endian), a view of `arr` itself when
    it is contiguous little-endian already (the PostgreSQL COPY writes it without a copy)."""
    items = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    prefix = np.int64(arr.shape[1]).astype("<i8").tobytes() if arr.ndim == 2 else b""
    return prefix, items.reshape(-1).view(np.uint8).data


def encode_array_bytes(arr: np.ndarray) -> bytes:
    """Stored form of an array (SQLite, PostgreSQL): raw little-endian items, 2-D prefixed
    by the column count."""
    return b"".join(array_bytes_parts(arr))


def decode_array_bytes(
    raw: bytes | bytearray | memoryview, ndim: int, dtype: np.dtype
) -> np.ndarray:
    """Inverse of `encode_array_bytes`: a writable array of `dtype`, a view of `raw` when
    that is a writable buffer in the right byte order (the PostgreSQL read hands bytearrays:
    a copy of 80 MB less per 1e7 doubles), else a copy."""
    flat = np.frombuffer(raw, dtype=dtype.newbyteorder("<"), offset=8 if ndim == 2 else 0)
    if not flat.flags.writeable or flat.dtype != dtype:
        flat = flat.astype(dtype)
    if ndim == 2:
        n_cols = int(np.frombuffer(raw, dtype="<i8", count=1)[0])
        return flat.reshape(-1, n_cols) if n_cols else flat.reshape(0, 0)
    return flat
