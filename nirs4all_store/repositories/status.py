"""Workspace-wide reads for applications: counts per table, the change token, the time of
the last write, and runs whose recording process stopped (heartbeat too old).

All set-based: one SELECT of scalar subqueries, whatever the number of rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nirs4all_store.models import Artifact, Chain, Log, Pipeline, Prediction, Run
from nirs4all_store.types import utcnow

TABLES: dict[str, sa.Table] = {
    "runs": Run.__table__,
    "pipelines": Pipeline.__table__,
    "chains": Chain.__table__,
    "predictions": Prediction.__table__,
    "artifacts": Artifact.__table__,
    "logs": Log.__table__,
}
#: Timestamp columns a write sets, per table (a commit changes one of them or a count).
WRITE_TIMES = {
    "runs": ("created_at", "completed_at", "heartbeat_at"),
    "pipelines": ("created_at", "completed_at"),
    "chains": ("created_at",),
    "predictions": ("created_at",),
    "artifacts": ("created_at", "saved_at"),
    "logs": ("created_at",),
}
#: A running run whose heartbeat is older than this is reported 'interrupted'.
STALE_RUN_SECONDS = 1800.0


def run_status_expr(cutoff: dt.datetime) -> sa.ColumnElement[str]:
    """The status a reader reports: 'interrupted' for a 'running' run whose process has not
    written since `cutoff` (heartbeat, else creation time)."""
    T = TABLES["runs"]
    stale = sa.and_(
        T.c.status == "running", sa.func.coalesce(T.c.heartbeat_at, T.c.created_at) < cutoff
    )
    return sa.case((stale, sa.literal("interrupted")), else_=T.c.status)


def stale_cutoff(seconds: float = STALE_RUN_SECONDS) -> dt.datetime:
    return utcnow() - dt.timedelta(seconds=float(seconds))


class StatusRepository:
    """Counts, change token and stale runs, over one Session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _scalars(self, columns: dict[str, sa.ColumnElement[Any]]) -> dict[str, Any]:
        row = self.session.execute(sa.select(*[c.label(k) for k, c in columns.items()])).one()
        return dict(row._mapping)

    def counts(self) -> dict[str, int]:
        """Rows per store table."""
        columns = {
            name: sa.select(sa.func.count()).select_from(table).scalar_subquery()
            for name, table in TABLES.items()
        }
        return {k: int(v or 0) for k, v in self._scalars(columns).items()}

    def last_write(self) -> dt.datetime | None:
        """The newest write time recorded in any table (None for an empty workspace)."""
        columns = {
            f"{name}_{col}": sa.select(sa.func.max(TABLES[name].c[col])).scalar_subquery()
            for name, cols in WRITE_TIMES.items()
            for col in cols
        }
        values = [v for v in self._scalars(columns).values() if v is not None]
        return max(values) if values else None

    def change_token(self) -> str:
        """A short text that changes on every commit that adds, removes or finishes rows
        (counts and newest write times of every table). Unlike a file's mtime it works on
        servers and under a WAL. Not covered: a repair of reference counts alone."""
        columns: dict[str, sa.ColumnElement[Any]] = {}
        for name, table in TABLES.items():
            columns[f"{name}_n"] = sa.select(sa.func.count()).select_from(table).scalar_subquery()
            for col in WRITE_TIMES[name]:
                columns[f"{name}_{col}"] = sa.select(sa.func.max(table.c[col])).scalar_subquery()
        values = self._scalars(columns)
        text = "|".join(f"{k}={values[k]!s}" for k in sorted(values))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def run_token(self, run_id: str) -> str | None:
        """The change token of one run: its row and its pipelines (count, newest times)."""
        T, P = TABLES["runs"], TABLES["pipelines"]
        run = self.session.execute(
            sa.select(T.c.status, T.c.completed_at, T.c.heartbeat_at).where(T.c.run_id == run_id)
        ).first()
        if run is None:
            return None
        mine = P.c.run_id == run_id
        pipelines = self.session.execute(
            sa.select(sa.func.count(), sa.func.max(P.c.created_at), sa.func.max(P.c.completed_at))
            .select_from(P)
            .where(mine)
        ).one()
        text = "|".join(str(v) for v in (*run, *pipelines))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def stale_runs(self, cutoff: dt.datetime) -> list[str]:
        T = TABLES["runs"]
        query = sa.select(T.c.run_id).where(
            T.c.status == "running", sa.func.coalesce(T.c.heartbeat_at, T.c.created_at) < cutoff
        )
        return [r[0] for r in self.session.execute(query).all()]

    def mark_interrupted(self, run_ids: list[str], reason: str) -> None:
        if not run_ids:
            return
        T = TABLES["runs"]
        self.session.execute(
            sa.update(T)
            .where(T.c.run_id.in_(run_ids), T.c.status == "running")
            .values(status="interrupted", error=reason, completed_at=utcnow())
        )

    def heartbeat_run(self, run_id: str) -> None:
        T = TABLES["runs"]
        self.session.execute(sa.update(T).where(T.c.run_id == run_id).values(heartbeat_at=utcnow()))

    def heartbeat_of_pipelines(self, pipeline_ids: list[str]) -> None:
        """Refresh the heartbeat of the runs owning these pipelines (one statement)."""
        if not pipeline_ids:
            return
        T, P = TABLES["runs"], TABLES["pipelines"]
        owners = sa.select(P.c.run_id).where(P.c.pipeline_id.in_(pipeline_ids))
        self.session.execute(
            sa.update(T)
            .where(T.c.run_id.in_(owners), T.c.status == "running")
            .values(heartbeat_at=utcnow())
        )
