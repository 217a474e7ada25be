"""The read calls of nirs4all 0.8.x's store: its signatures, polars frames, JSON as text.

A mixin placed before `WorkspaceStore` in `Nirs4allWorkspaceStore`'s bases: each call maps
nirs4all's arguments (positional ones included, in the reference's order) onto this
library's call and turns the Arrow result into the polars frame nirs4all reads.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from nirs4all_store.integrations.nirs4all_sql import arrow_to_polars
from nirs4all_store.repositories.base import rows_to_arrow
from nirs4all_store.repositories.predictions import T as PREDICTIONS
from nirs4all_store.repositories.predictions import apply_filters
from nirs4all_store.validation import check_page

__all__ = ["CHAIN_JSON", "Nirs4allReads"]

CHAIN_JSON = (
    "steps", "fold_artifacts", "shared_artifacts", "branch_path", "best_params", "cv_scores",
    "final_scores",
)  # fmt: skip
PIPELINE_JSON = ("expanded_config", "generator_choices")
PREDICTION_JSON = ("scores", "best_params")
RUN_JSON = ("config", "datasets", "summary")
_QUERY_ARGS = (
    "dataset_name", "model_class", "partition", "fold_id", "branch_id", "pipeline_id", "run_id",
    "task_type", "limit", "offset",
)  # fmt: skip
#: Text filters the reference turns into `LIKE` when the value holds a `%` (its
#: `build_prediction_query`, nirs4all 0.8.11): `model_class="sklearn.PLS%"`.
_LIKE_FILTERS = ("dataset_name", "model_class", "partition", "fold_id", "pipeline_id")
_TOP_ARGS = ("n", "metric", "ascending", "partition", "dataset_name", "task_type", "group_by")
_RUNS_ARGS = ("status", "dataset", "project_id", "limit", "offset")


def _named(names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    if len(args) > len(names):
        raise TypeError(f"at most {len(names)} positional arguments ({names}), got {len(args)}")
    return {**dict(zip(names, args, strict=False)), **kwargs}


class Nirs4allReads:
    """`list_pipelines`, `list_runs`, logs, `query_predictions`, `top_predictions`."""

    def list_pipelines(
        self, run_id: str | None = None, dataset_name: str | None = None, **kwargs: Any
    ) -> Any:
        """Pipelines (newest first) as a polars DataFrame, JSON columns as text."""
        table = super().list_pipelines(run_id, dataset_name, **kwargs)  # type: ignore[misc]
        return arrow_to_polars(table, PIPELINE_JSON)

    def list_runs(self, *args: Any, **kwargs: Any) -> Any:
        """Runs, newest first (`status`, `dataset`, `project_id`, `limit`, `offset` as nirs4all
        passes them), as a polars DataFrame. `dataset` keeps the runs that name that dataset
        (an exact name, not the reference's substring match); `project_id` those of a
        project."""
        given = _named(_RUNS_ARGS, args, kwargs)
        dataset, project_id = given.pop("dataset", None), given.pop("project_id", None)
        limit, offset = given.pop("limit", 100), given.pop("offset", 0)
        if dataset is None and project_id is None:
            table = super().list_runs(limit=limit, offset=offset, **given)  # type: ignore[misc]
            return arrow_to_polars(table, RUN_JSON)
        table = super().list_runs(limit=None, **given)  # type: ignore[misc]
        datasets = table.column("datasets").to_pylist()
        projects = table.column("project_id").to_pylist()
        keep = [
            i
            for i in range(table.num_rows)
            if (dataset is None or _names(datasets[i], dataset))
            and (project_id is None or projects[i] == project_id)
        ]
        end = None if limit is None else offset + limit
        return arrow_to_polars(table.take(pa.array(keep[offset:end], pa.int64())), RUN_JSON)

    def get_pipeline_log(self, pipeline_id: str) -> Any:
        """A pipeline's log entries as a polars DataFrame."""
        return arrow_to_polars(super().get_pipeline_log(pipeline_id), ("details",))  # type: ignore[misc]

    def get_run_log_summary(self, run_id: str) -> Any:
        """Per-pipeline log totals of a run as a polars DataFrame."""
        return arrow_to_polars(super().get_run_log_summary(run_id))  # type: ignore[misc]

    def query_predictions(self, *args: Any, **kwargs: Any) -> Any:
        """Predictions matching the filters (None means no filter), as a polars DataFrame.

        Filters are nirs4all's, by name or position (`dataset_name`, `model_class`,
        `partition`, `fold_id`, `branch_id`, `pipeline_id`, `run_id`, `task_type`, `limit`,
        `offset`); a text filter holding a `%` is a SQL LIKE pattern, as in the reference
        (`model_class="sklearn.PLS%"`). Rows come oldest first (the reference: newest first).
        """
        given = {k: v for k, v in _named(_QUERY_ARGS, args, kwargs).items() if v is not None}
        patterns = {
            k: given.pop(k)
            for k in _LIKE_FILTERS
            if isinstance(given.get(k), str) and "%" in given[k]
        }
        if not patterns:
            table = super().query_predictions(**given)  # type: ignore[misc]
        else:
            table = self._read(  # type: ignore[attr-defined]
                "query_predictions", lambda s: _query_like(s, given, patterns)
            )
        return arrow_to_polars(table, PREDICTION_JSON)

    def top_predictions(self, *args: Any, **kwargs: Any) -> Any:
        """The best predictions, as a polars DataFrame (`task_type` filters)."""
        given = _named(_TOP_ARGS, args, kwargs)
        if given.get("task_type") is None:
            given.pop("task_type", None)
        table = super().top_predictions(**given)  # type: ignore[misc]
        return arrow_to_polars(table, PREDICTION_JSON)


def _query_like(session: Session, given: dict[str, Any], patterns: dict[str, str]) -> pa.Table:
    """`query_predictions` with LIKE patterns: the other filters checked and applied as the
    store applies them, the patterns in the same SQL statement, same order and paging."""
    table = PREDICTIONS
    limit, offset = check_page(given.pop("limit", None), given.pop("offset", 0))
    run_id = given.pop("run_id", None)
    query = apply_filters(sa.select(table), given, run_id=run_id)
    for name, pattern in patterns.items():
        query = query.where(table.c[name].like(pattern))
    query = query.order_by(table.c.created_at, table.c.prediction_id).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return rows_to_arrow(list(table.columns), session.execute(query).all())


def _names(datasets: Any, wanted: str) -> bool:
    """Whether a run's `datasets` JSON (a list of names or of {"name": ...}) names `wanted`."""
    if isinstance(datasets, str):
        datasets = json.loads(datasets)
    for item in datasets or []:
        if item == wanted or (isinstance(item, dict) and item.get("name") == wanted):
            return True
    return False
