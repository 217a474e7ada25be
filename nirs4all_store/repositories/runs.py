"""Data access for runs."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from nirs4all_store.models import Run
from nirs4all_store.repositories.affected import rows_affected
from nirs4all_store.repositories.base import forget_known, is_known, note_known, rows_to_arrow
from nirs4all_store.repositories.status import run_status_expr, stale_cutoff
from nirs4all_store.types import utcnow
from nirs4all_store.validation import (
    RUN_STATUSES,
    check_choice,
    check_id,
    check_json,
    check_text,
    new_id,
)

T = Run.__table__


class RunRepository:
    """Runs: one experiment, a set of pipelines over datasets."""

    table = T

    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self,
        name: str,
        config: Any = None,
        datasets: Any = None,
        *,
        run_id: str | None = None,
    ) -> str:
        check_text("name", name)
        config = check_json("config", config)
        datasets = check_json("datasets", datasets)
        if datasets is not None and not isinstance(datasets, list):
            raise TypeError(f"datasets must be a list of dicts, got {type(datasets).__name__}")
        run_id = check_id("run_id", run_id) if run_id is not None else new_id()
        self.session.execute(
            sa.insert(T).values(
                run_id=run_id,
                name=name,
                status="running",
                config=config,
                datasets=datasets,
                created_at=(now := utcnow()),
                heartbeat_at=now,
            )
        )
        note_known(self.session, "runs", (run_id,))
        return run_id

    def exists(self, run_id: str) -> bool:
        return (
            self.session.execute(sa.select(T.c.run_id).where(T.c.run_id == run_id)).first()
            is not None
        )

    def require(self, run_id: str) -> None:
        check_id("run_id", run_id)
        if is_known(self.session, "runs", run_id):
            return
        if not self.exists(run_id):
            raise KeyError(f"unknown run_id {run_id!r}")
        note_known(self.session, "runs", (run_id,))

    def finish(
        self, run_id: str, status: str, *, summary: Any = None, error: str | None = None
    ) -> None:
        check_choice("status", status, RUN_STATUSES)
        values: dict[str, Any] = {"status": status, "completed_at": utcnow()}
        if summary is not None:
            values["summary"] = check_json("summary", summary)
        if error is not None:
            values["error"] = check_text("error", error)
        check_id("run_id", run_id)
        updated = rows_affected(
            self.session, sa.update(T).where(T.c.run_id == run_id).values(**values)
        )
        if not updated:  # one statement: an unknown id updates nothing
            raise KeyError(f"unknown run_id {run_id!r}")

    def _columns(self) -> list[Any]:
        """The run's columns, `status` as a reader reports it ('interrupted' for a running
        run whose process stopped writing: `repositories.status.run_status_expr`)."""
        status = run_status_expr(stale_cutoff()).label("status")
        return [status if c.name == "status" else c for c in T.columns]

    def get(self, run_id: str) -> dict[str, Any] | None:
        check_id("run_id", run_id)
        row = self.session.execute(sa.select(*self._columns()).where(T.c.run_id == run_id)).first()
        return dict(row._mapping) if row else None

    def list(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> pa.Table:
        """Newest first (ties broken by id so pages are stable)."""
        columns = self._columns()
        query = sa.select(*columns)
        if status is not None:
            check_choice("status", status, RUN_STATUSES)
            query = query.where(run_status_expr(stale_cutoff()) == status)
        if name is not None:
            query = query.where(T.c.name == name)
        query = query.order_by(T.c.created_at.desc(), T.c.run_id.desc()).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        return rows_to_arrow(list(T.columns), self.session.execute(query).all())

    def delete(self, run_id: str) -> int:
        forget_known(self.session)
        return rows_affected(self.session, sa.delete(T).where(T.c.run_id == run_id))
