"""`store.array_store` as nirs4all 0.8.x calls it, over the store's `prediction_arrays` table.

nirs4all's own ArrayStore keeps one Parquet file per dataset under `arrays/`; here the
arrays live in the database beside their prediction (one transaction, deleted with it), and
this class only speaks the calls nirs4all makes: `save_batch(records)` from
`Predictions.flush`, `load_single` / `load_batch` when a workspace is reopened, `stats()`
for `Predictions.store_stats()`, `delete_batch`, `list_datasets`, and the per-dataset
maintenance calls (`load_dataset`, `delete_dataset`, `compact`, `integrity_check`). Deletes
take effect at once (no tombstones), so `compact` has nothing to rewrite.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nirs4all_store.repositories import PredictionRepository
from nirs4all_store.repositories.datasets import DatasetRepository
from nirs4all_store.validation import stored_prediction_id

if TYPE_CHECKING:
    from nirs4all_store.integrations.nirs4all_store import Nirs4allWorkspaceStore

__all__ = ["Nirs4allArrayStore", "stored_prediction_id"]

_ARRAYS = ("y_true", "y_pred", "y_proba", "sample_indices", "weights")


def _flat(value: Any, dtype: Any) -> np.ndarray | None:
    if value is None:
        return None
    array = np.asarray(value, dtype=dtype)
    return array.reshape(-1) if array.ndim == 2 and array.shape[1] == 1 else array


class Nirs4allArrayStore:
    """The `ArrayStore` calls of nirs4all 0.8.x, backed by the store's database."""

    def __init__(self, store: Nirs4allWorkspaceStore) -> None:
        self._store = store

    @property
    def arrays_dir(self) -> Path:
        """Where nirs4all's own store would keep Parquet files (unused here)."""
        return self._store.workspace_path / "arrays"

    def save_batch(self, records: Sequence[dict[str, Any]]) -> int:
        """Attach y_true / y_pred / y_proba / sample_indices / weights to stored predictions
        (replacing arrays they had), in one transaction. Returns the rows written."""
        written = 0
        with self._store.transaction():
            for record in records:
                pid = stored_prediction_id(record["prediction_id"])
                arrays = {
                    "y_true": _flat(record.get("y_true"), np.float64),
                    "y_pred": _flat(record.get("y_pred"), np.float64),
                    "y_proba": record.get("y_proba"),
                    "sample_indices": _flat(record.get("sample_indices"), np.int64),
                    "weights": _flat(record.get("weights"), np.float64),
                }
                if all(v is None for v in arrays.values()):
                    continue
                self._store.save_prediction_arrays(pid, **arrays)
                written += 1
        return written

    def load_batch(
        self, prediction_ids: Iterable[str], dataset_name: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """`{prediction_id: {y_true, y_pred, y_proba, sample_indices, weights}}` of the ids
        that have arrays (keyed by the ids as given)."""
        result: dict[str, dict[str, Any]] = {}
        for given in prediction_ids:
            row = self._store.get_prediction(stored_prediction_id(given), load_arrays=True)
            if row is None or (dataset_name is not None and row["dataset_name"] != dataset_name):
                continue
            arrays = {name: row.get(name) for name in _ARRAYS}
            if any(v is not None for v in arrays.values()):
                result[given] = {**arrays, "sample_metadata": None}
        return result

    def load_single(
        self, prediction_id: str, dataset_name: str | None = None
    ) -> dict[str, Any] | None:
        """The arrays of one prediction, None when it has none."""
        return self.load_batch([prediction_id], dataset_name).get(prediction_id)

    def delete_batch(self, prediction_ids: Iterable[str], dataset_name: str | None = None) -> int:
        """Remove the arrays of these predictions (the predictions stay)."""
        ids = [stored_prediction_id(p) for p in prediction_ids]
        with self._store.transaction() as session:
            return PredictionRepository(session).delete_arrays(ids)

    def list_datasets(self) -> list[str]:
        """Names of the datasets that have prediction arrays."""
        return sorted(self._dataset_rows())

    def stats(self) -> dict[str, Any]:
        """`{total_files, total_rows, total_bytes, datasets: {name: {rows, bytes}}}` (no files
        here: `total_files` is 0 and bytes are not measured)."""
        counts = self._dataset_rows()
        return {
            "total_files": 0,
            "total_rows": sum(counts.values()),
            "total_bytes": 0,
            "datasets": {name: {"rows": n, "bytes": 0} for name, n in counts.items()},
        }

    def _dataset_rows(self) -> dict[str, int]:
        with self._store.transaction() as session:
            return PredictionRepository(session).array_counts_by_dataset()

    # -- per-dataset maintenance ------------------------------------------------------------
    def load_dataset(self, dataset_name: str) -> Any:
        """Every prediction of the dataset that has arrays, as the polars DataFrame of
        nirs4all's Parquet file (its columns; `y_proba` flattened with `y_proba_shape`).
        FileNotFoundError, as there, when the dataset has no arrays."""
        import polars as pl

        with self._store.transaction() as session:
            rows = DatasetRepository(session).rows_with_arrays(dataset_name)
        if not rows:
            raise FileNotFoundError(
                f"no prediction arrays for dataset {dataset_name!r}; "
                f"datasets with arrays: {self.list_datasets()}"
            )
        schema = _parquet_schema()
        columns = {name: [_parquet_cell(name, row) for row in rows] for name in schema}
        return pl.DataFrame(columns, schema=schema)

    def delete_dataset(self, dataset_name: str) -> bool:
        """Remove the arrays of every prediction of the dataset (the predictions stay, as
        nirs4all's removal of the dataset's Parquet file leaves them). True if any existed."""
        with self._store.transaction() as session:
            return DatasetRepository(session).delete_arrays(dataset_name) > 0

    def compact(self, dataset_name: str | None = None) -> dict[str, dict[str, Any]]:
        """`{dataset: {rows_before, rows_after, rows_removed, bytes_before, bytes_after}}`:
        deletes are immediate here, so nothing is removed (bytes are not measured: 0).
        Space freed in the database is reclaimed by `store.vacuum()`."""
        counts = self._dataset_rows()
        names = [dataset_name] if dataset_name is not None else sorted(counts)
        return {
            name: {
                "rows_before": counts[name],
                "rows_after": counts[name],
                "rows_removed": 0,
                "bytes_before": 0,
                "bytes_after": 0,
            }
            for name in names
            if name in counts
        }

    def integrity_check(self, expected_ids: Iterable[str] | None = None) -> dict[str, Any]:
        """`{orphan_ids, missing_ids, corrupt_files}` against `expected_ids` (nirs4all passes
        the ids of `query_predictions()`): ids with arrays that were not expected, and
        expected ids without arrays (as given). No files here: `corrupt_files` is empty."""
        with self._store.transaction() as session:
            stored = DatasetRepository(session).array_ids()
        if expected_ids is None:
            return {"orphan_ids": [], "missing_ids": [], "corrupt_files": []}
        expected = {given: stored_prediction_id(given) for given in expected_ids}
        return {
            "orphan_ids": sorted(stored - set(expected.values())),
            "missing_ids": sorted(g for g, pid in expected.items() if pid not in stored),
            "corrupt_files": [],
        }


def _parquet_schema() -> dict[str, Any]:
    """The columns of nirs4all 0.8's per-dataset Parquet files, in their order."""
    import polars as pl

    text, floats = pl.Utf8, pl.List(pl.Float64)
    return {
        "prediction_id": text, "dataset_name": text, "model_name": text, "fold_id": text,
        "partition": text, "metric": text, "val_score": pl.Float64, "task_type": text,
        "y_true": floats, "y_pred": floats, "y_proba": floats,
        "y_proba_shape": pl.List(pl.Int32), "sample_indices": pl.List(pl.Int64),
        "weights": floats, "sample_metadata": text,
    }  # fmt: skip


def _parquet_cell(name: str, row: dict[str, Any]) -> Any:
    if name == "prediction_id":
        return str(row[name])
    if name == "sample_metadata":
        return None
    if name == "y_proba_shape":
        proba = row["y_proba"]
        return None if proba is None else list(np.shape(proba))
    value = row[name]
    if name in _ARRAYS:
        return None if value is None else np.asarray(value).reshape(-1).tolist()
    return value
