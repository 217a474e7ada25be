"""Facade calls for chains (fitted preprocessing-to-model paths) and predictions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
from sqlalchemy.orm import Session

from nirs4all_store.facade.base import FacadeBase, as_records
from nirs4all_store.repositories import (
    ArtifactRepository,
    ChainRepository,
    PipelineRepository,
    PredictionRepository,
)
from nirs4all_store.repositories.base import require_ids, require_parents
from nirs4all_store.types import utcnow
from nirs4all_store.validation import (
    check_id,
    check_page,
    check_uuid,
    new_ids,
    validate_arrays,
    validate_prediction,
)


class ResultCalls(FacadeBase):
    """Chains and predictions (with their dense arrays), recorded and queried."""

    # -- chains --------------------------------------------------------------------------
    def save_chain(
        self,
        pipeline_id: str,
        steps: list[Any],
        model_step_idx: int,
        model_class: str,
        preprocessings: str | None = "",
        fold_strategy: str = "per_fold",
        fold_artifacts: dict[str, Any] | None = None,
        shared_artifacts: dict[str, Any] | None = None,
        branch_path: Any = None,
        source_index: int | None = None,
        model_name: str | None = None,
        metric: str | None = None,
        task_type: str | None = None,
        dataset_name: str | None = None,
    ) -> str:
        """Record a chain and take one reference on each distinct artifact it names."""
        record = {k: v for k, v in locals().items() if k != "self"}
        return self.save_chains([record])[0]

    def save_chains(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        """Many chains in one transaction (each record holds `save_chain`'s arguments).

        One insert, and one reference-count update per distinct count: recording a group of
        pipelines costs a few statements, not a few per chain. Returns the ids in order.
        """
        rows = [ChainRepository.validate(**record) for record in as_records(records)]
        if self._queueing("save_chains"):
            return self._enqueue("save_chains", lambda q, look: q.add_chains(rows, look))
        if self._direct is not None and len(rows) == 1:
            row, refs = rows[0]
            if self._direct.chain(row, Counter(refs)):
                return [row["chain_id"]]

        def work(s: Session) -> list[str]:
            pipeline_ids = {r["pipeline_id"] for r, _ in rows}
            require_ids(s, PipelineRepository.table.c.pipeline_id, pipeline_ids)
            ChainRepository(s).insert_many([row for row, _ in rows])
            counts = Counter(ref for _, refs in rows for ref in refs)
            artifacts = ArtifactRepository(s)
            if artifacts.adjust(counts) != len(counts):  # unknown ids (or a concurrent gc)
                unknown = artifacts.missing(counts)
                owners = sorted({r["pipeline_id"] for r, refs in rows if refs & set(unknown)})
                raise KeyError(
                    f"unknown artifact id(s) {unknown} in chain(s) of pipeline(s) {owners}"
                )
            return [row["chain_id"] for row, _ in rows]

        return self._run("save_chains", work)

    def get_chain(self, chain_id: str) -> dict[str, Any] | None:
        return self._read("get_chain", lambda s: ChainRepository(s).get(chain_id))

    def get_chains_for_pipeline(
        self, pipeline_id: str, limit: int | None = None, offset: int = 0
    ) -> pa.Table:
        """The chains of a pipeline, oldest first (`count_chains(pipeline_id)` counts them)."""
        limit, offset = check_page(limit, offset)
        return self._read(
            "get_chains_for_pipeline",
            lambda s: ChainRepository(s).for_pipeline(pipeline_id, limit=limit, offset=offset),
        )

    # -- predictions ---------------------------------------------------------------------
    def save_prediction(
        self,
        pipeline_id: str,
        chain_id: str | None,
        dataset_name: str,
        model_name: str,
        model_class: str,
        fold_id: str,
        partition: str,
        val_score: float | None = None,
        test_score: float | None = None,
        train_score: float | None = None,
        metric: str = "rmse",
        task_type: str = "regression",
        n_samples: int | None = None,
        n_features: int | None = None,
        scores: Any = None,
        best_params: Any = None,
        branch_id: int | None = None,
        branch_name: str | None = None,
        exclusion_count: int = 0,
        exclusion_rate: float = 0.0,
        preprocessings: str = "",
        prediction_id: str | None = None,
    ) -> str:
        """Record one prediction (no arrays); returns its id. Prefer `save_predictions` in bulk."""
        record = {k: v for k, v in locals().items() if k != "self"}
        return self.save_predictions([record])[0]

    def save_prediction_arrays(
        self,
        prediction_id: str,
        y_true: Any = None,
        y_pred: Any = None,
        y_proba: Any = None,
        sample_indices: Any = None,
        weights: Any = None,
    ) -> None:
        """Attach dense arrays to a stored prediction (KeyError for an unknown one)."""
        prediction_id = check_uuid("prediction_id", prediction_id)
        arrays = validate_arrays(prediction_id, locals())
        if arrays is None:
            raise ValueError("save_prediction_arrays needs at least one array")
        if self._queueing("save_prediction_arrays"):
            self._enqueue("save_prediction_arrays", lambda q, look: q.add_arrays(arrays, look))
            return
        if self._direct is not None and self._direct.arrays(arrays):
            return  # the common case: a stored prediction without arrays yet

        def work(s: Session) -> None:
            repo = PredictionRepository(s)
            exists, has_arrays = repo.arrays_state(prediction_id)  # one query, not two
            if not exists:
                raise KeyError(f"unknown prediction_id {prediction_id!r}")
            if has_arrays:
                repo.delete_arrays([prediction_id])
            repo.insert_many([], [arrays])

        self._run("save_prediction_arrays", work)

    def save_predictions(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        """Store many predictions with their arrays in one transaction (the fast path).

        Each record holds prediction fields (as `save_prediction`) and optionally the arrays
        y_true, y_pred, y_proba (2-D), sample_indices, weights. All or nothing.
        """
        records = as_records(records)
        rows, arrays = [], []
        now = utcnow()
        fresh_ids = new_ids(len(records))
        for i, record in enumerate(records):
            row = validate_prediction(record, now, fresh_ids[i])
            if row["n_samples"] is None and record.get("y_true") is not None:
                row["n_samples"] = len(record["y_true"])
            rows.append(row)
            arr = validate_arrays(row["prediction_id"], record)
            if arr is not None:
                arrays.append(arr)
        if self._queueing("save_predictions"):
            return self._enqueue(
                "save_predictions", lambda q, look: q.add_predictions(rows, arrays, look)
            )
        direct = self._direct
        if direct is not None and len(rows) == 1 and not arrays and direct.prediction(rows[0]):
            return [rows[0]["prediction_id"]]

        def work(s: Session) -> list[str]:
            chains = {r["chain_id"] for r in rows if r["chain_id"] is not None}
            require_parents(
                s,
                [
                    (PipelineRepository.table.c.pipeline_id, {r["pipeline_id"] for r in rows}),
                    (ChainRepository.table.c.chain_id, chains),
                ],
            )
            PredictionRepository(s).insert_many(rows, arrays)
            return [r["prediction_id"] for r in rows]

        return self._run("save_predictions", work)

    def get_prediction(
        self, prediction_id: str, load_arrays: bool = False
    ) -> dict[str, Any] | None:
        return self._read(
            "get_prediction",
            lambda s: PredictionRepository(s).get(prediction_id, load_arrays=load_arrays),
        )

    def query_predictions(
        self,
        *,
        run_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        **filters: Any,
    ) -> pa.Table:
        """Predictions matching equality filters (dataset_name, partition, branch_id=0, ...);
        `count_predictions(run_id=..., **filters)` is the total to page through."""
        limit, offset = check_page(limit, offset)
        return self._read(
            "query_predictions",
            lambda s: PredictionRepository(s).query(
                filters, run_id=run_id, limit=limit, offset=offset
            ),
        )

    def top_predictions(
        self,
        n: int = 10,
        metric: str = "val_score",
        ascending: bool = True,
        partition: str | None = "val",
        dataset_name: str | None = None,
        group_by: str | None = None,
        run_id: str | None = None,
        **filters: Any,
    ) -> pa.Table:
        """The best `n` predictions by a score column; with `group_by`, the best n per group.

        `run_id` and equality `filters` (as `query_predictions` takes them) narrow the set.
        """
        return self._read(
            "top_predictions",
            lambda s: PredictionRepository(s).top(
                n,
                metric=metric,
                ascending=ascending,
                partition=partition,
                dataset_name=dataset_name,
                group_by=group_by,
                filters=filters,
                run_id=run_id,
            ),
        )

    def delete_prediction(self, prediction_id: str) -> bool:
        """Delete one prediction and its arrays; False when it did not exist."""
        check_id("prediction_id", prediction_id)
        return self._run(
            "delete_prediction", lambda s: PredictionRepository(s).delete([prediction_id]) > 0
        )
