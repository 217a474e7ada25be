"""Bulk paths for prediction arrays: Arrow tables for DuckDB's raw connection and binary
COPY for PostgreSQL (the dense y_true/y_pred arrays are most of a run's bytes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from nirs4all_store.models import PredictionArrays
from nirs4all_store.validation import ARRAY_FIELDS

A = PredictionArrays.__table__


# -- COPY path for arrays (PostgreSQL) -------------------------------------------------------
_PG_ARRAY_TYPES = {"y_true": "float8[]", "y_pred": "float8[]", "y_proba": "float8[]"}
_PG_ARRAY_TYPES |= {"sample_indices": "int8[]", "weights": "float8[]"}


def pg_copy_arrays(raw: Any, arrays: Sequence[dict[str, Any]]) -> None:
    """Binary COPY of prediction arrays: 10x executemany (7,500 x 2 x 200 doubles: 0.9 s
    against 9.2 s), inside the session's transaction (same connection)."""
    fields = [f for f in ARRAY_FIELDS if any(a[f] is not None for a in arrays)]
    cols = ", ".join(["prediction_id", *fields])
    statement = f"COPY {A.name} ({cols}) FROM STDIN (FORMAT BINARY)"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(["text", *(_PG_ARRAY_TYPES[f] for f in fields)])
        for a in arrays:
            values = [None if a[f] is None else a[f].tolist() for f in fields]
            copy.write_row((a["prediction_id"], *values))


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
