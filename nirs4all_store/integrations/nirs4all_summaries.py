"""nirs4all 0.8.x's leaderboard calls: chain summaries, the aggregated view, a chain's rows.

A mixin of `Nirs4allWorkspaceStore`. The summaries are aggregated from the predictions on
every read, in SQL (`repositories.chain_summary_query`), so they are right immediately after
a prediction is re-saved or deleted; the reference reads columns stored on `chains` that
only its own flush recomputes. Frames are polars, JSON columns as text, as nirs4all reads
them.
"""

from __future__ import annotations

from typing import Any

from nirs4all_store.integrations.nirs4all_sql import arrow_to_polars, rows_to_polars
from nirs4all_store.repositories.chain_summary_query import ChainSummaryQuery

#: The array fields of `get_prediction_arrays` (nirs4all before 0.8 returned these five).
_ARRAYS = ("y_true", "y_pred", "y_proba", "weights", "sample_indices")

__all__ = ["HIGHER_IS_BETTER_METRICS", "Nirs4allSummaries", "metric_ascending"]

#: nirs4all 0.8.11's `nirs4all.core.metrics.HIGHER_IS_BETTER_METRICS` (its single source of
#: metric direction): every other metric name ranks lower-is-better, as there.
HIGHER_IS_BETTER_METRICS = frozenset({
    "accuracy", "balanced_accuracy",
    "precision", "balanced_precision", "precision_micro", "precision_macro",
    "recall", "balanced_recall", "recall_micro", "recall_macro",
    "f1", "f1_score", "f1_micro", "f1_macro",
    "specificity", "roc_auc", "auc",
    "matthews_corrcoef", "mcc", "cohen_kappa", "kappa", "jaccard",
    "r2", "r2_score", "rpd", "rpiq",
    "explained_variance", "explained_variance_score",
    "pearson_r", "spearman_r", "consistency",
})  # fmt: skip
_SCOPES = ("cv", "all", "final")
_PREDICTION_JSON = ("scores", "best_params")


def metric_ascending(metric: str) -> bool:
    """True when lower values of `metric` are better (rmse, mse, mae, ...), as nirs4all."""
    return metric.lower() not in HIGHER_IS_BETTER_METRICS


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return n


def _check_scope(score_scope: str) -> None:
    if score_scope not in _SCOPES:
        raise ValueError(f"score_scope must be one of {list(_SCOPES)}, got {score_scope!r}")


class Nirs4allSummaries:
    """`query_chain_summaries`, `query_top_chains`, the aggregated-prediction pair and
    `get_chain_predictions`."""

    def _summaries(self, filters: dict[str, Any], **options: Any) -> Any:
        keys, rows = self._read(  # type: ignore[attr-defined]
            "query_chain_summaries",
            lambda s: ChainSummaryQuery(s).summaries(
                filters, higher_is_better=HIGHER_IS_BETTER_METRICS, **options
            ),
        )
        return rows_to_polars(keys, rows)

    def query_chain_summaries(
        self,
        run_id: str | list[str] | None = None,
        pipeline_id: str | list[str] | None = None,
        chain_id: str | list[str] | None = None,
        dataset_name: str | list[str] | None = None,
        model_class: str | list[str] | None = None,
        metric: str | None = None,
        task_type: str | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
    ) -> Any:
        """One row per chain (nirs4all's `v_chain_summary` columns plus `final_agg_*`): CV
        averages and fold count, refit scores, `cv_scores` per-metric averages, chain
        metadata, `run_id` and `pipeline_status`, as a polars DataFrame, oldest chain first.

        Filters combine with AND; a list means any of its values, a text containing `%` is a
        LIKE pattern (`model_class="sklearn.PLS%"`). `limit` / `offset` page the rows."""
        filters = {
            "run_id": run_id, "pipeline_id": pipeline_id, "chain_id": chain_id,
            "dataset_name": dataset_name, "model_class": model_class, "metric": metric,
            "task_type": task_type,
        }  # fmt: skip
        return self._summaries(filters, limit=limit, offset=max(int(offset), 0))

    def query_top_chains(
        self,
        metric: str | None = None,
        n: int = 10,
        score_column: str = "cv_val_score",
        ascending: bool | None = None,
        *,
        offset: int = 0,
        **filters: Any,
    ) -> Any:
        """The `n` best chains by `score_column` (NULL scores last), as a polars DataFrame.

        `ascending=None` takes the direction from the metric: lower is better for error
        metrics (rmse, mae, ...), higher for r2, accuracy and the like. With no `metric`
        filter each chain is ranked by its own metric's direction (the reference sorts
        ascending then, wrong for higher-is-better chains). `filters`: run_id,
        pipeline_id, chain_id, dataset_name, model_class, task_type, as in
        `query_chain_summaries`; `offset` skips that many of the best."""
        filters = {**filters, "metric": metric}
        if ascending is None and metric is not None:
            ascending = metric_ascending(metric)
        return self._summaries(
            filters,
            rank_by=score_column,
            ascending=ascending,
            limit=_check_n(n),
            offset=max(int(offset), 0),
        )

    def query_aggregated_predictions(
        self,
        run_id: str | None = None,
        pipeline_id: str | None = None,
        chain_id: str | None = None,
        dataset_name: str | None = None,
        model_class: str | None = None,
        metric: str | None = None,
        score_scope: str = "cv",
    ) -> Any:
        """nirs4all's older name for `query_chain_summaries` (its 0.8 store answers both from
        the chain summary view; `score_scope`, 'cv', 'all' or 'final', is checked and, as
        there, does not change the rows: each carries both CV and refit scores)."""
        _check_scope(score_scope)
        return self.query_chain_summaries(
            run_id, pipeline_id, chain_id, dataset_name, model_class, metric
        )

    def query_top_aggregated_predictions(
        self,
        metric: str,
        n: int = 10,
        score_column: str = "avg_val_score",
        ascending: bool | None = None,
        score_scope: str = "cv",
        **filters: Any,
    ) -> Any:
        """nirs4all's older name for `query_top_chains` with a required metric; the old
        column names (`avg_val_score`, `min_test_score`, ...) map to the CV averages."""
        _check_scope(score_scope)
        return self.query_top_chains(metric, n, score_column, ascending, **filters)

    def get_chain_predictions(
        self, chain_id: str, partition: str | None = None, fold_id: str | None = None
    ) -> Any:
        """A chain's prediction rows (no arrays) ordered by partition then fold id, as a
        polars DataFrame; `partition` and `fold_id` narrow them."""
        table = self._read(  # type: ignore[attr-defined]
            "get_chain_predictions",
            lambda s: ChainSummaryQuery(s).chain_predictions(chain_id, partition, fold_id),
        )
        return arrow_to_polars(table, _PREDICTION_JSON)

    def get_prediction_arrays(self, prediction_id: str) -> dict[str, Any] | None:
        """The arrays of one prediction (`y_true`, `y_pred`, `y_proba`, `weights`,
        `sample_indices`; a missing one None), None when it has none or does not exist.

        The call of nirs4all's store before 0.8 (arrays in DuckDB), still read by its web
        application; nirs4all's id or the stored one finds the prediction."""
        arrays = self.array_store.load_single(prediction_id)  # type: ignore[attr-defined]
        if arrays is None:
            return None
        return {name: arrays.get(name) for name in _ARRAYS}
