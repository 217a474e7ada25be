"""A dataset's predictions and arrays as a unit: what nirs4all's per-dataset calls touch.

nirs4all 0.8 keeps one Parquet file of arrays per dataset and deletes, loads and checks them
a dataset at a time; here the arrays are rows of `prediction_arrays` beside their
predictions, and these are the set-based statements for those calls.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nirs4all_store.models import Prediction, PredictionArrays
from nirs4all_store.repositories.affected import rows_affected
from nirs4all_store.repositories.predictions import PredictionRepository

__all__ = ["DatasetRepository"]

P = Prediction.__table__
A = PredictionArrays.__table__
_META = ("prediction_id", "dataset_name", "model_name", "fold_id", "partition", "metric",
         "val_score", "task_type")  # fmt: skip
_ARRAYS = ("y_true", "y_pred", "y_proba", "sample_indices", "weights")


def _of_dataset(dataset_name: str) -> sa.Select[Any]:
    return sa.select(P.c.prediction_id).where(P.c.dataset_name == dataset_name)


class DatasetRepository:
    """Per-dataset deletes and reads of predictions and their arrays."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def delete_predictions(self, dataset_name: str) -> int:
        """Delete the dataset's predictions and their arrays; returns the predictions deleted."""
        count = self.session.execute(
            sa.select(sa.func.count()).select_from(P).where(P.c.dataset_name == dataset_name)
        ).scalar_one()
        if count:
            PredictionRepository(self.session).delete(_of_dataset(dataset_name))
        return int(count)

    def delete_arrays(self, dataset_name: str) -> int:
        """Delete the arrays of the dataset's predictions (the predictions stay)."""
        return rows_affected(
            self.session, sa.delete(A).where(A.c.prediction_id.in_(_of_dataset(dataset_name)))
        )

    def rows_with_arrays(self, dataset_name: str) -> list[dict[str, Any]]:
        """The dataset's predictions that have arrays: metadata and arrays, ordered by
        partition, fold id and id (the order nirs4all's compacted files have)."""
        columns = [P.c[name] for name in _META] + [A.c[name] for name in _ARRAYS]
        query = (
            sa.select(*columns)
            .select_from(P.join(A, A.c.prediction_id == P.c.prediction_id))
            .where(P.c.dataset_name == dataset_name)
            .order_by(P.c.partition, P.c.fold_id, P.c.prediction_id)
        )
        return [dict(row._mapping) for row in self.session.execute(query).all()]

    def array_ids(self) -> set[str]:
        """Ids of every prediction that has arrays."""
        return {str(i) for i in self.session.execute(sa.select(A.c.prediction_id)).scalars()}
