"""Chain summary columns (cv_* and final_*), recomputed from the chain's predictions in SQL.

nirs4all 0.8's web application reads these columns more than anything else; its store
recomputes them after each flush with one SELECT per column per chain. Here one UPDATE per
5,000 chains sets them all from correlated subqueries, the same text on DuckDB, SQLite and
PostgreSQL: the cross-validation averages over rows without a refit context (fold ids
ending in `_agg` excluded, as nirs4all does), the number of distinct cross-validation fold
ids, and the refit (`fold_id = 'final'`) test and train scores of the earliest test row.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nirs4all_store.models import Chain, Prediction
from nirs4all_store.repositories.affected import rows_affected

__all__ = ["ChainSummaryRepository"]

C = Chain.__table__
P = Prediction.__table__


def _cv_rows() -> sa.ColumnElement[bool]:
    return sa.and_(
        P.c.chain_id == C.c.chain_id,
        P.c.refit_context.is_(None),
        sa.not_(P.c.fold_id.like("%\\_agg", escape="\\")),
    )


def _final(column: sa.Column[float]) -> sa.ScalarSelect[float]:
    return (
        sa.select(column)
        .where(
            P.c.chain_id == C.c.chain_id,
            P.c.refit_context.is_not(None),
            P.c.fold_id == "final",
            P.c.partition == "test",
        )
        .order_by(P.c.created_at, P.c.prediction_id)
        .limit(1)
        .scalar_subquery()
    )


class ChainSummaryRepository:
    """Recomputes the summary columns of chains from their predictions."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def refresh(self, chain_ids: Iterable[str]) -> int:
        """Recompute the summaries of these chains; returns how many chains were updated."""
        ids = sorted(set(chain_ids))
        values = {
            "cv_val_score": sa.select(sa.func.avg(P.c.val_score)).where(_cv_rows()),
            "cv_test_score": sa.select(sa.func.avg(P.c.test_score)).where(_cv_rows()),
            "cv_train_score": sa.select(sa.func.avg(P.c.train_score)).where(_cv_rows()),
            "cv_fold_count": sa.select(sa.func.count(sa.distinct(P.c.fold_id))).where(_cv_rows()),
            "final_test_score": _final(P.c.test_score),
            "final_train_score": _final(P.c.train_score),
        }
        scalar = {
            k: (v.scalar_subquery() if isinstance(v, sa.Select) else v) for k, v in values.items()
        }
        updated = 0
        for start in range(0, len(ids), 5000):
            chunk = ids[start : start + 5000]
            statement = sa.update(C).where(C.c.chain_id.in_(chunk)).values(**scalar)
            updated += rows_affected(self.session, statement)
        return updated
