"""Input validation: one definition of every check, shared by the facade, the repositories,
the bulk paths and the workbench. Every error names the field, the bad value and what was
expected, and is the same on every backend (the checks run before any SQL).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from nirs4all_store.types import json_document, sanitize_json, utcnow

RUN_STATUSES = ("running", "completed", "failed", "interrupted")
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
    """Ids are non-empty strings; NaN, numbers and blanks are refused by name, and so are
    path separators, `..`, NUL and other control characters: ids name exported files (a
    stored chain id `../../X` once made an export write outside the workspace)."""
    if value is None and optional:
        return None
    if (
        type(value) is str
        and value
        and not value[0].isspace()
        and value.lower() != "nan"
        and value.isprintable()
        and "/" not in value
        and "\\" not in value
        and ".." not in value
    ):
        return value  # the common case, without the slower checks below (bulk-path speed)
    if not isinstance(value, str) or not value.strip() or value.strip().lower() == "nan":
        raise ValueError(f"{field} must be a non-empty id string, got {value!r}")
    if not value.isprintable() or "/" in value or "\\" in value or ".." in value:
        raise ValueError(
            f"{field} must not hold '/', '\\', '..' or control characters, got {value!r}"
        )
    return check_text(field, value)  # type: ignore[return-value]


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


#: uuid5 namespace of nirs4all prediction ids that are not UUIDs (fixed: stored ids depend on it).
NIRS4ALL_ID_NAMESPACE = uuid.UUID("1d3cbbb0-3a53-4f1e-9a57-6e69727334a1")


def stored_prediction_id(prediction_id: str) -> str:
    """The UUID under which a nirs4all prediction id is stored (the adapter and adoption).

    nirs4all 0.8 ids are 16-character prefixes of a UUID (`str(uuid4())[:16]`); this store
    keys predictions by native UUIDs (DuckDB, revision 0005: 3x faster run deletes). A UUID
    is kept as it is; any other id maps to its deterministic `uuid5`, so the same nirs4all id
    always finds the same row, whether nirs4all wrote it through the adapter or it was adopted.
    """
    canonical = uuid_or_none(prediction_id)
    if canonical is not None:
        return canonical
    if not isinstance(prediction_id, str) or not prediction_id:
        raise ValueError(f"prediction_id must be a non-empty id string, got {prediction_id!r}")
    return str(uuid.uuid5(NIRS4ALL_ID_NAMESPACE, prediction_id))


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
    """A string every backend stores as given: no NUL (PostgreSQL refuses it, the others
    kept it) and no lone surrogate (not encodable as UTF-8: UnicodeEncodeError)."""
    if type(value) is str and "\x00" not in value and (value.isascii() or _utf8(value)):
        return value
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string, got {type(value).__name__}: {value!r}")
    if "\x00" in value:
        raise ValueError(f"{field} must not contain NUL characters, got {value!r}")
    if not _utf8(value):
        raise ValueError(f"{field} must be valid Unicode (a lone surrogate?), got {value!r}")
    return value


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


_INT64 = range(-(2**63), 2**63)


def check_int(field: str, value: Any, *, optional: bool = True) -> int | None:
    """An integer that fits the 64-bit columns of every backend (SQLite raised OverflowError
    for 2**70, the others a DatabaseError)."""
    if type(value) is int:
        if value not in _INT64:
            raise ValueError(f"{field} must fit in 64 bits, got {value!r}")
        return value
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and math.isfinite(value) and value == int(value):
            return int(value)
        raise TypeError(f"{field} must be an integer, got {type(value).__name__}: {value!r}")
    return check_int(field, int(value))


def check_page(limit: Any, offset: Any) -> tuple[int | None, int]:
    """`limit` (None: all) and `offset` of a listing, as integers >= 0 (SQLite took -1 and
    -5, the other backends raised DatabaseError; `limit='x'` was a bare int() error)."""
    checked_limit = check_int("limit", limit)
    checked_offset = check_int("offset", 0 if offset is None else offset, optional=False)
    if checked_limit is not None and checked_limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit!r}")
    if checked_offset is None or checked_offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset!r}")
    return checked_limit, checked_offset


def check_filter(name: str, value: Any) -> Any:
    """An equality filter's value, checked as the field itself is (None matches NULL)."""
    spec = PREDICTION_FIELDS[name]
    return None if value is None else spec.check(name, value)


def check_json(field: str, value: Any, *, encoded: bool = False) -> Any:
    """A JSON-serialisable value (NaN/inf become null); TypeError names the field.

    `encoded=True` returns it already encoded (a `JSONText`, `types.json_document`): the
    bulk path then inserts the text as it is instead of encoding the document again."""
    if value is None:
        return None
    try:
        document = json_document(value)
    except TypeError as exc:
        raise TypeError(f"{field} is not JSON-serialisable: {exc}") from exc
    except (RecursionError, ValueError) as exc:  # circular, or nested thousands deep
        raise ValueError(f"{field} is circular or nested too deeply for JSON: {exc}") from exc
    if "\\u" in document and _BAD_JSON_TEXT.search(document):
        raise ValueError(
            f"{field} holds a NUL character or a lone surrogate, which PostgreSQL's JSON "
            "refuses (and the other backends would keep): remove it"
        )
    return document if encoded else sanitize_json(value)


# NUL or a surrogate escape not in a high+low pair, in JSON text encoded with ensure_ascii.
_BAD_JSON_TEXT = re.compile(
    r"(?<!\\)\\u0000|\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f])|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}"
)


def as_float_array(
    field: str, value: Any, *, ndim: int = 1, optional: bool = True
) -> np.ndarray | None:
    if value is None and optional:
        return None
    if np.iscomplexobj(value):  # float64 would silently drop the imaginary part
        raise TypeError(f"{field} must be real numbers, got complex values")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{field} must be numeric, got {type(value).__name__}: {exc}") from exc
    if ndim == 1 and arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != ndim:
        raise ValueError(f"{field} must be {ndim}-D, got shape {arr.shape}")
    if ndim == 2 and 0 in arr.shape:
        # A (5, 0) or (0, 3) matrix came back with another shape on each backend.
        raise ValueError(f"{field} must have at least one row and one column, got {arr.shape}")
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


# -- predictions: one table of fields, from which validation, filters and the bulk paths
# derive (the facade's signature is held equal to it by a test) -----------------------------
@dataclass(frozen=True)
class FieldSpec:
    """How one prediction field is checked: `check(field, value)` returns the clean value."""

    check: Callable[[str, Any], Any]
    required: bool = False
    default: Any = None
    filter: bool = False
    """usable as an equality filter in `query_predictions` / `top_predictions`"""


def _optional_id(field: str, value: Any) -> str | None:
    return check_id(field, value, optional=True)


def _optional_text(field: str, value: Any) -> str | None:
    return check_text(field, value, optional=True)


def _fold_id(field: str, value: Any) -> Any:
    """Fold ids are text; an integer fold number is accepted and spelled as text."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = str(value)
    return check_text(field, value)


def _json_encoded(field: str, value: Any) -> Any:
    return check_json(field, value, encoded=True)


PREDICTION_FIELDS: dict[str, FieldSpec] = {
    "pipeline_id": FieldSpec(check_id, required=True, filter=True),
    "chain_id": FieldSpec(_optional_id, filter=True),
    "dataset_name": FieldSpec(check_text, required=True, filter=True),
    "model_name": FieldSpec(check_text, required=True, filter=True),
    "model_class": FieldSpec(check_text, required=True, filter=True),
    "fold_id": FieldSpec(_fold_id, required=True, filter=True),
    "partition": FieldSpec(partial(check_choice, allowed=PARTITIONS), required=True, filter=True),
    "val_score": FieldSpec(check_number),
    "test_score": FieldSpec(check_number),
    "train_score": FieldSpec(check_number),
    "metric": FieldSpec(check_text, required=True, filter=True),
    "task_type": FieldSpec(partial(check_choice, allowed=TASK_TYPES), required=True, filter=True),
    "n_samples": FieldSpec(check_int),
    "n_features": FieldSpec(check_int),
    "scores": FieldSpec(_json_encoded),
    "best_params": FieldSpec(_json_encoded),
    "preprocessings": FieldSpec(_optional_text, default="", filter=True),
    "branch_id": FieldSpec(check_int, filter=True),
    "branch_name": FieldSpec(_optional_text, filter=True),
    "exclusion_count": FieldSpec(check_int, default=0),
    "exclusion_rate": FieldSpec(check_number, default=0.0),
    "refit_context": FieldSpec(_optional_text, filter=True),
}
ARRAY_FIELDS = ("y_true", "y_pred", "y_proba", "sample_indices", "weights")
#: Equality filters of `query_predictions` and `top_predictions`.
FILTERS = tuple(name for name, spec in PREDICTION_FIELDS.items() if spec.filter)
_ALLOWED_FIELDS = frozenset(PREDICTION_FIELDS) | {"prediction_id", "created_at"} | set(ARRAY_FIELDS)


def validate_prediction(
    record: Mapping[str, Any], now: dt.datetime | None = None, fresh_id: str | None = None
) -> dict[str, Any]:
    """A clean row for the predictions table; errors name the field and the bad value.

    `now` is the created_at of records without one (one clock read per batch), `fresh_id`
    the id of a record without one (ids made in bulk: `new_ids`)."""
    if not record.keys() <= _ALLOWED_FIELDS:
        unknown = record.keys() - _ALLOWED_FIELDS
        raise ValueError(
            f"unknown prediction fields {sorted(unknown)}; "
            f"expected some of {sorted(_ALLOWED_FIELDS)}"
        )
    pid = record.get("prediction_id")
    row: dict[str, Any] = {
        "prediction_id": (
            check_uuid("prediction_id", pid) if pid is not None else fresh_id or new_id()
        )
    }
    for name, spec in PREDICTION_FIELDS.items():
        value = record.get(name, spec.default)
        if value is None and spec.required:
            raise ValueError(f"prediction field {name!r} is required")
        row[name] = spec.check(name, value)
    row["created_at"] = record.get("created_at") or now or utcnow()
    return row


def validate_arrays(prediction_id: str, record: Mapping[str, Any]) -> dict[str, Any] | None:
    """Clean arrays of one prediction, or None when it has none."""
    if all(record.get(f) is None for f in ARRAY_FIELDS):
        return None
    arrays = {
        "y_true": as_float_array("y_true", record.get("y_true")),
        "y_pred": as_float_array("y_pred", record.get("y_pred")),
        "y_proba": as_float_array("y_proba", record.get("y_proba"), ndim=2),
        "sample_indices": as_index_array("sample_indices", record.get("sample_indices")),
        "weights": as_float_array("weights", record.get("weights")),
    }
    # `weights` is left out: nirs4all 0.8 stores its fold weights there (one per fold, e.g.
    # 3 for 29 samples; traced, docs/nirs4all.md), not one weight per sample.
    lengths = {
        name: len(arr) for name, arr in arrays.items() if arr is not None and name != "weights"
    }
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"arrays of prediction {prediction_id} must have one length, got {lengths}"
        )
    return {"prediction_id": prediction_id, **arrays}
