"""Chain summaries read live from the predictions, in SQL: nirs4all's `v_chain_summary` rows.

nirs4all 0.8's store reads its leaderboard from summary columns stored on `chains`, which go
stale when a prediction is deleted or re-saved until someone recomputes them. Here every read
aggregates the predictions themselves (one statement, the same on DuckDB, SQLite and
PostgreSQL), so a summary is right immediately after any upsert or delete:

- `cv_*`: averages over rows without a refit context, fold ids ending in `_agg` left out,
  and the number of distinct cross-validation fold ids (as nirs4all computes them);
- `final_*`: the earliest refit (`fold_id = 'final'`) test row; `final_agg_*`: the earliest
  `final_agg` test row;
- `model_name`, `metric`, `task_type`: the chain's own, else those of its earliest
  cross-validation prediction, else of its earliest prediction.

Only the two JSON maps (`cv_scores`, the per-metric averages of the `scores` documents, and
the `best_params` fallback) are assembled in Python, for the chains a query returned: JSON
functions differ on every backend (the reference does that part in Python too).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from nirs4all_store.models import Chain, Pipeline, Prediction
from nirs4all_store.repositories.base import rows_to_arrow
from nirs4all_store.validation import PARTITIONS, check_choice, check_id

__all__ = ["SCORE_COLUMNS", "SUMMARY_FILTERS", "ChainSummaryQuery", "score_column"]

C = Chain.__table__
P = Prediction.__table__
PL = Pipeline.__table__

SUMMARY_FILTERS = (
    "run_id", "pipeline_id", "chain_id", "dataset_name", "model_class", "metric", "task_type",
)  # fmt: skip
#: The score columns a ranking may use, and nirs4all's older aggregated names for them.
SCORE_COLUMNS = {
    **{c: c for c in ("cv_val_score", "cv_test_score", "cv_train_score")},
    **{c: c for c in ("final_test_score", "final_train_score")},
    **{c: c for c in ("final_agg_test_score", "final_agg_train_score")},
    **{f"{agg}_{part}_score": f"cv_{part}_score" for agg in ("avg", "min", "max")
       for part in ("val", "test", "train")},
}  # fmt: skip
_ORDER = "_created_at"


def score_column(name: str) -> str:
    """The summary column `name` ranks by (aliases resolved); ValueError naming the choices."""
    if name not in SCORE_COLUMNS:
        raise ValueError(f"invalid score column {name!r}; expected one of {sorted(SCORE_COLUMNS)}")
    return SCORE_COLUMNS[name]


def _cv_rows() -> sa.ColumnElement[bool]:
    return sa.and_(P.c.refit_context.is_(None), sa.not_(P.c.fold_id.like("%\\_agg", escape="\\")))


def _cv_subquery(scope: sa.ColumnElement[bool]) -> sa.Subquery:
    return (
        sa.select(
            P.c.chain_id,
            sa.func.avg(P.c.val_score).label("cv_val_score"),
            sa.func.avg(P.c.test_score).label("cv_test_score"),
            sa.func.avg(P.c.train_score).label("cv_train_score"),
            sa.func.count(sa.distinct(P.c.fold_id)).label("cv_fold_count"),
        )
        .where(scope, _cv_rows())
        .group_by(P.c.chain_id)
        .subquery("cv")
    )


def _first_row(
    name: str, scope: sa.ColumnElement[bool], condition: sa.ColumnElement[bool], *first: Any
) -> sa.Subquery:
    """Per chain, the earliest prediction matching `condition` (`first` orders before time)."""
    rank = sa.func.row_number().over(
        partition_by=P.c.chain_id, order_by=[*first, P.c.created_at, P.c.prediction_id]
    )
    inner = (
        sa.select(
            P.c.chain_id,
            P.c.test_score,
            P.c.train_score,
            P.c.scores,
            P.c.model_name,
            P.c.metric,
            P.c.task_type,
            rank.label("rn"),
        )
        .where(scope, condition)
        .subquery()
    )
    return sa.select(inner).where(inner.c.rn == 1).subquery(name)


def _scope(filters: Mapping[str, Any]) -> sa.ColumnElement[bool]:
    """The predictions to aggregate: those of the chains the chain-level filters keep, so a
    query for one run or chain does not aggregate the whole table (SQLite does not push an
    outer filter into grouped or windowed subqueries: one chain of 2,000 read in ~100 ms)."""
    columns = {"chain_id": C.c.chain_id, "pipeline_id": C.c.pipeline_id, "run_id": PL.c.run_id,
               "model_class": C.c.model_class}  # fmt: skip
    conditions = [
        _condition(columns[name], value)
        for name, value in filters.items()
        if name in columns and _given(value)
    ]
    if not conditions:
        return P.c.chain_id.is_not(None)
    chains = (
        sa.select(C.c.chain_id)
        .select_from(C.join(PL, PL.c.pipeline_id == C.c.pipeline_id))
        .where(*conditions)
    )
    return P.c.chain_id.in_(chains)


def _summary(filters: Mapping[str, Any]) -> sa.Subquery:
    scope = _scope(filters)
    cv = _cv_subquery(scope)
    final = _first_row(
        "fin",
        scope,
        sa.and_(P.c.refit_context.is_not(None), P.c.fold_id == "final", P.c.partition == "test"),
    )
    agg = _first_row("agg", scope, sa.and_(P.c.fold_id == "final_agg", P.c.partition == "test"))
    rep = _first_row("rep", scope, sa.true(), sa.case((P.c.refit_context.is_(None), 0), else_=1))
    source = (
        C.join(PL, PL.c.pipeline_id == C.c.pipeline_id)
        .outerjoin(cv, cv.c.chain_id == C.c.chain_id)
        .outerjoin(final, final.c.chain_id == C.c.chain_id)
        .outerjoin(agg, agg.c.chain_id == C.c.chain_id)
        .outerjoin(rep, rep.c.chain_id == C.c.chain_id)
    )
    columns = [
        C.c.chain_id, C.c.pipeline_id, C.c.model_class, C.c.model_step_idx,
        sa.func.coalesce(C.c.model_name, rep.c.model_name).label("model_name"),
        C.c.preprocessings, C.c.branch_path, C.c.source_index,
        sa.func.coalesce(C.c.metric, rep.c.metric).label("metric"),
        sa.func.coalesce(C.c.task_type, rep.c.task_type).label("task_type"),
        C.c.best_params,
        sa.func.coalesce(C.c.dataset_name, PL.c.dataset_name).label("dataset_name"),
        cv.c.cv_val_score, cv.c.cv_test_score, cv.c.cv_train_score,
        sa.func.coalesce(cv.c.cv_fold_count, 0).label("cv_fold_count"),
        sa.null().label("cv_scores"),
        final.c.test_score.label("final_test_score"),
        final.c.train_score.label("final_train_score"),
        final.c.scores.label("final_scores"),
        agg.c.test_score.label("final_agg_test_score"),
        agg.c.train_score.label("final_agg_train_score"),
        agg.c.scores.label("final_agg_scores"),
        PL.c.run_id, PL.c.status.label("pipeline_status"), C.c.created_at.label(_ORDER),
    ]  # fmt: skip
    return sa.select(*columns).select_from(source).subquery("summary")


def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, (list, tuple, set)) and not value)


def _condition(column: Any, value: Any) -> sa.ColumnElement[bool]:
    """nirs4all's filter rules: a list means IN, a text with `%` means LIKE, else equality."""
    if isinstance(value, (list, tuple, set)):
        return column.in_([str(v) for v in value])
    if isinstance(value, str) and "%" in value:
        return column.like(value)
    return column == str(value)


def _check_filters(filters: Mapping[str, Any]) -> None:
    for name in filters:
        if name not in SUMMARY_FILTERS:
            raise ValueError(
                f"unknown chain summary filter {name!r}; expected one of {list(SUMMARY_FILTERS)}"
            )


class ChainSummaryQuery:
    """Reads chain summaries and a chain's predictions (nirs4all's leaderboard queries)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def summaries(
        self,
        filters: Mapping[str, Any],
        *,
        rank_by: str | None = None,
        ascending: bool | None = None,
        higher_is_better: Collection[str] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[list[str], list[list[Any]]]:
        """(column names, rows) of the chains matching `filters`, oldest first or, with
        `rank_by`, best first (NULL scores last). `ascending=None` takes each chain's
        direction from its metric: descending for the names in `higher_is_better`."""
        _check_filters(filters)
        summary = _summary(filters)
        query = sa.select(*[c for c in summary.c if c.name != _ORDER]).where(
            *[_condition(summary.c[k], v) for k, v in filters.items() if _given(v)]
        )
        order: list[Any] = []
        if rank_by is not None:
            score = summary.c[score_column(rank_by)]
            if ascending is None:
                better = sa.func.lower(summary.c.metric).in_(sorted(higher_is_better))
                key = sa.case((better, -score), else_=score)
            else:
                key = score if ascending else -score
            order = [sa.case((score.is_(None), 1), else_=0), key]
        query = query.order_by(*order, summary.c[_ORDER], summary.c.chain_id)
        query = query.offset(offset)
        if limit is not None:
            query = query.limit(limit)
        result = self.session.execute(query)
        keys = list(result.keys())
        rows = [list(row) for row in result.all()]
        self._fill_json_maps(keys, rows)
        return keys, rows

    def _fill_json_maps(self, keys: list[str], rows: list[list[Any]]) -> None:
        """`cv_scores` (per partition, per metric averages rounded to 6 digits, as nirs4all)
        and `best_params` when the chain has none: from the chains' predictions."""
        if not rows:
            return
        at = {k: i for i, k in enumerate(keys)}
        cv_maps = self._cv_score_maps([row[at["chain_id"]] for row in rows])
        no_params = [row[at["chain_id"]] for row in rows if row[at["best_params"]] in (None, {})]
        params = self._first_best_params(no_params)
        for row in rows:
            chain_id = row[at["chain_id"]]
            row[at["cv_scores"]] = cv_maps.get(chain_id)
            if chain_id in params:
                row[at["best_params"]] = params[chain_id]

    def _cv_score_maps(self, chain_ids: Sequence[str]) -> dict[str, Any]:
        """Only the CV val/test rows with scores are read (JSON decoding is the cost here:
        ~0.3 s for 20,000 rows)."""
        sums: dict[str, dict[str, dict[str, list[float]]]] = {}
        for start in range(0, len(chain_ids), 5000):
            query = sa.select(P.c.chain_id, P.c.partition, P.c.scores).where(
                P.c.chain_id.in_(chain_ids[start : start + 5000]),
                _cv_rows(),
                P.c.partition.in_(("val", "test")),
                P.c.scores.is_not(None),
            )
            for chain_id, partition, scores in self.session.execute(query).all():
                inner = scores.get(partition, scores) if isinstance(scores, dict) else None
                if not isinstance(inner, dict):
                    continue
                for metric, value in inner.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        per = sums.setdefault(chain_id, {}).setdefault(partition, {})
                        per.setdefault(metric, []).append(float(value))
        return {
            chain_id: {
                part: {m: round(sum(vs) / len(vs), 6) for m, vs in metrics.items()}
                for part, metrics in parts.items()
            }
            for chain_id, parts in sums.items()
        }

    def _first_best_params(self, chain_ids: Sequence[str]) -> dict[str, Any]:
        """Per chain, the earliest non-empty `best_params` of its predictions, CV rows first
        (nirs4all fills the chain's from there)."""
        params: dict[str, Any] = {}
        for start in range(0, len(chain_ids), 5000):
            query = (
                sa.select(P.c.chain_id, P.c.best_params)
                .where(
                    P.c.chain_id.in_(chain_ids[start : start + 5000]),
                    P.c.best_params.is_not(None),
                )
                .order_by(P.c.refit_context.is_not(None), P.c.created_at, P.c.prediction_id)
            )
            for chain_id, best in self.session.execute(query).all():
                if best not in (None, {}) and chain_id not in params:
                    params[chain_id] = best
        return params

    def chain_predictions(
        self, chain_id: str, partition: str | None = None, fold_id: str | None = None
    ) -> pa.Table:
        """A chain's predictions (no arrays), ordered by partition then fold id."""
        check_id("chain_id", chain_id)
        query = sa.select(*P.columns).where(P.c.chain_id == chain_id)
        if partition is not None:
            query = query.where(P.c.partition == check_choice("partition", partition, PARTITIONS))
        if fold_id is not None:
            query = query.where(P.c.fold_id == str(fold_id))
        query = query.order_by(P.c.partition, P.c.fold_id, P.c.created_at, P.c.prediction_id)
        return rows_to_arrow(list(P.columns), self.session.execute(query).all())
