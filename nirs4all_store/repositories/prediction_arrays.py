"""Bulk paths for prediction arrays: Arrow tables for DuckDB's raw connection and binary
COPY for PostgreSQL (the dense y_true/y_pred arrays are most of a run's bytes)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from nirs4all_store.models import PredictionArrays
from nirs4all_store.validation import ARRAY_FIELDS

A = PredictionArrays.__table__


# -- COPY path for arrays (PostgreSQL) -------------------------------------------------------
_PG_ELEMENT_OIDS = {"y_true": 701, "y_pred": 701, "y_proba": 701, "weights": 701}
_PG_ELEMENT_OIDS["sample_indices"] = 20  # float8 = 701, int8 = 20 (pg_type)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_COPY_CHUNK = 1 << 24  # bytes handed to the server per write


def pg_copy_arrays(raw: Any, arrays: Sequence[dict[str, Any]]) -> None:
    """Binary COPY of prediction arrays, inside the session's transaction (same connection).

    The COPY stream is built by numpy, not by psycopg from Python lists: one prediction with
    2 x 2e6 doubles took 10.8 s through `tolist()` + `write_row` and ~0.5 s this way (item
    11 of issue 15); 10x faster than executemany already for many small arrays."""
    fields = [f for f in ARRAY_FIELDS if any(a[f] is not None for a in arrays)]
    cols = ", ".join(["prediction_id", *fields])
    statement = f"COPY {A.name} ({cols}) FROM STDIN (FORMAT BINARY)"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        pending = [_COPY_HEADER]
        size = len(_COPY_HEADER)
        for a in arrays:
            key = str(a["prediction_id"]).encode("utf-8")
            parts = [struct.pack(">hi", 1 + len(fields), len(key)), key]
            for f in fields:
                parts.extend(_pg_array_field(a[f], _PG_ELEMENT_OIDS[f]))
            pending.extend(parts)
            size += sum(len(p) for p in parts)
            if size >= _COPY_CHUNK:
                copy.write(b"".join(pending))
                pending, size = [], 0
        pending.append(_COPY_TRAILER)
        copy.write(b"".join(pending))


def _pg_array_field(value: np.ndarray | None, oid: int) -> list[bytes]:
    """One field of a binary COPY row: PostgreSQL's array wire format (`array_send`)."""
    if value is None:
        return [struct.pack(">i", -1)]
    arr = np.asarray(value)
    if arr.size == 0:
        body = struct.pack(">iii", 0, 0, oid)
        return [struct.pack(">i", len(body)), body]
    header = struct.pack(">iii", arr.ndim, 0, oid) + b"".join(
        struct.pack(">ii", n, 1) for n in arr.shape
    )
    element = ">f8" if oid == 701 else ">i8"
    items = np.empty(arr.size, dtype=[("length", ">i4"), ("value", element)])
    items["length"] = 8
    items["value"] = arr.ravel()
    body = items.tobytes()
    return [struct.pack(">i", len(header) + len(body)), header, body]


def _list_array(
    arrays: Sequence[np.ndarray | None], dtype: np.dtype, pa_type: pa.DataType
) -> pa.Array:
    """A list<...> Arrow array from numpy 1-D arrays in one concatenation (nulls kept)."""
    if all(a is None for a in arrays):
        return pa.nulls(len(arrays), pa.list_(pa_type))
    lengths = np.fromiter(
        (0 if a is None else len(a) for a in arrays), dtype=np.int32, count=len(arrays)
    )
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    present = [a for a in arrays if a is not None]
    values = np.concatenate(present).astype(dtype, copy=False) if present else np.empty(0, dtype)
    mask = pa.array([a is None for a in arrays], pa.bool_())
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa_type), mask=mask)


def _nested_list_array(arrays: Sequence[np.ndarray | None]) -> pa.Array:
    """list<list<double>> for 2-D arrays (y_proba keeps its shape)."""
    if all(a is None for a in arrays):
        return pa.nulls(len(arrays), pa.list_(pa.list_(pa.float64())))
    rows: list[np.ndarray | None] = []
    outer_lengths = []
    for a in arrays:
        if a is None:
            outer_lengths.append(0)
        else:
            outer_lengths.append(a.shape[0])
            rows.extend(a)
    inner = _list_array(rows, np.dtype(np.float64), pa.float64())
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum(outer_lengths, out=offsets[1:])
    mask = pa.array([a is None for a in arrays], pa.bool_())
    return pa.ListArray.from_arrays(pa.array(offsets), inner, mask=mask)


def arrays_arrow(arrays: Sequence[dict[str, Any]]) -> pa.Table:
    f64 = np.dtype(np.float64)
    return pa.table(
        {
            "prediction_id": pa.array([a["prediction_id"] for a in arrays], pa.string()),
            "y_true": _list_array([a["y_true"] for a in arrays], f64, pa.float64()),
            "y_pred": _list_array([a["y_pred"] for a in arrays], f64, pa.float64()),
            "y_proba": _nested_list_array([a["y_proba"] for a in arrays]),
            "sample_indices": _list_array(
                [a["sample_indices"] for a in arrays], np.dtype(np.int64), pa.int64()
            ),
            "weights": _list_array([a["weights"] for a in arrays], f64, pa.float64()),
        }
    )
