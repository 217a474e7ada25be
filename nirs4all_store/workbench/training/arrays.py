"""Checks of the arrays a `Dataset` holds: numbers, finite, frozen, metadata columns.

Only numpy is imported here: loading a dataset must not pay for scikit-learn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["check_finite", "check_metadata", "frozen_float"]


def frozen_float(value: Any, what: str) -> np.ndarray:
    """A read-only float64 C array (copied unless it already is one) so hashes cannot drift."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{what} must be an array of numbers, got {type(value).__name__}")
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{what} must hold numbers (int, float or bool), got dtype {arr.dtype}; "
            "encode class labels as integers first"
        )
    if arr.dtype == np.float64 and arr.flags.c_contiguous and not arr.flags.writeable:
        return arr
    out = np.array(arr, dtype=np.float64, order="C", copy=True)
    out.setflags(write=False)
    return out


def check_finite(arr: np.ndarray, what: str) -> None:
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        where = ", ".join(str(int(i)) for i in bad[0])
        raise ValueError(
            f"{what} holds {len(bad)} NaN/inf value(s), first at index ({where}); "
            "expected finite numbers"
        )


def check_metadata(metadata: Any, n: int, label: str) -> dict[str, np.ndarray]:
    """Metadata columns as read-only 1-D arrays of one value per training sample."""
    if not isinstance(metadata, Mapping):
        raise TypeError(f"{label}: metadata must be a dict of column -> values")
    out = {}
    for column, values in metadata.items():
        arr = np.array(values, copy=True)
        if arr.ndim != 1 or len(arr) != n:
            raise ValueError(
                f"{label}: metadata column {column!r} must hold one value per training sample "
                f"({n}), got shape {arr.shape}"
            )
        arr.setflags(write=False)
        out[str(column)] = arr
    return out
