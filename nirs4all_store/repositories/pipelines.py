"""Data access for pipelines."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from nirs4all_store.models import Pipeline
from nirs4all_store.repositories.affected import rows_affected
from nirs4all_store.repositories.base import (
    forget_known,
    insert_rows,
    is_known,
    note_known,
    rows_to_arrow,
)
from nirs4all_store.types import utcnow
from nirs4all_store.validation import (
    PIPELINE_STATUSES,
    check_choice,
    check_id,
    check_json,
    check_number,
    check_text,
    new_id,
)

T = Pipeline.__table__


class PipelineRepository:
    """Pipelines: one expanded configuration of a run on one dataset."""

    table = T

    def __init__(self, session: Session) -> None:
        self.session = session

    def create(self, *args: Any, **kwargs: Any) -> str:
        """Insert one pipeline (arguments as `validate`); returns its id."""
        row = self.validate(*args, **kwargs)
        self.insert_many([row])
        return str(row["pipeline_id"])

    @staticmethod
    def validate(
        run_id: str,
        name: str,
        expanded_config: Any = None,
        generator_choices: Any = None,
        dataset_name: str = "",
        dataset_hash: str | None = None,
        *,
        pipeline_id: str | None = None,
        status: str = "running",
        best_val: float | None = None,
        best_test: float | None = None,
        metric: str | None = None,
        duration_ms: float | None = None,
        error: str | None = None,
    ) -> dict[str, Any]:
        """A clean pipelines row: a running one, or one that already finished (status
        'completed', or 'failed' with its `error`)."""
        check_choice("status", status, PIPELINE_STATUSES)
        if status == "failed" and not (isinstance(error, str) and error.strip()):
            raise ValueError(f"a failed pipeline needs its error text, got error={error!r}")
        now = utcnow()
        return {
            "pipeline_id": check_id("pipeline_id", pipeline_id) if pipeline_id else new_id(),
            "run_id": check_id("run_id", run_id),
            "name": check_text("name", name),
            "expanded_config": check_json("expanded_config", expanded_config),
            "generator_choices": check_json("generator_choices", generator_choices),
            "dataset_name": check_text("dataset_name", dataset_name),
            "dataset_hash": check_text("dataset_hash", dataset_hash, optional=True),
            "status": status,
            "best_val": check_number("best_val", best_val),
            "best_test": check_number("best_test", best_test),
            "metric": check_text("metric", metric, optional=True),
            "duration_ms": check_number("duration_ms", duration_ms),
            "error": check_text("error", error, optional=True),
            "created_at": now,
            "completed_at": None if status == "running" else now,
        }

    def insert_many(self, rows: list[dict[str, Any]]) -> None:
        """Insert validated rows (the runs they name are the caller's job)."""
        if rows:
            insert_rows(self.session, T, rows)
            note_known(self.session, "pipelines", (row["pipeline_id"] for row in rows))

    def exists(self, pipeline_id: str) -> bool:
        query = sa.select(T.c.pipeline_id).where(T.c.pipeline_id == pipeline_id)
        return self.session.execute(query).first() is not None

    def require(self, pipeline_id: str) -> None:
        check_id("pipeline_id", pipeline_id)
        if is_known(self.session, "pipelines", pipeline_id):
            return
        if not self.exists(pipeline_id):
            raise KeyError(f"unknown pipeline_id {pipeline_id!r}")
        note_known(self.session, "pipelines", (pipeline_id,))

    def complete(
        self,
        pipeline_id: str,
        best_val: float | None,
        best_test: float | None,
        metric: str | None,
        duration_ms: float | None,
    ) -> None:
        self.apply_completion(
            pipeline_id, self.completion(best_val, best_test, metric, duration_ms)
        )

    @staticmethod
    def completion(
        best_val: float | None,
        best_test: float | None,
        metric: str | None,
        duration_ms: float | None,
    ) -> dict[str, Any]:
        """The checked column values of a completion (its time is the call's)."""
        return {
            "status": "completed",
            "best_val": check_number("best_val", best_val),
            "best_test": check_number("best_test", best_test),
            "metric": check_text("metric", metric, optional=True),
            "duration_ms": check_number("duration_ms", duration_ms),
            "completed_at": utcnow(),
        }

    def apply_completion(self, pipeline_id: str, values: dict[str, Any]) -> None:
        """Write a `completion`; KeyError for an unknown pipeline."""
        self._update(pipeline_id, values)

    def fail(self, pipeline_id: str, error: str) -> None:
        check_text("error", error)
        self._update(pipeline_id, {"status": "failed", "error": error, "completed_at": utcnow()})

    def _update(self, pipeline_id: str, values: dict[str, Any]) -> None:
        """One UPDATE; an unknown id (no row updated) is a KeyError."""
        check_id("pipeline_id", pipeline_id)
        updated = rows_affected(
            self.session, sa.update(T).where(T.c.pipeline_id == pipeline_id).values(**values)
        )
        if not updated:
            raise KeyError(f"unknown pipeline_id {pipeline_id!r}")

    def get(self, pipeline_id: str) -> dict[str, Any] | None:
        check_id("pipeline_id", pipeline_id)
        row = self.session.execute(sa.select(T).where(T.c.pipeline_id == pipeline_id)).first()
        return dict(row._mapping) if row else None

    def list(
        self,
        *,
        run_id: str | None = None,
        dataset_name: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> pa.Table:
        """Newest first (ties broken by id so pages are stable)."""
        query = sa.select(T)
        if run_id is not None:
            query = query.where(T.c.run_id == run_id)
        if dataset_name is not None:
            query = query.where(T.c.dataset_name == dataset_name)
        if status is not None:
            query = query.where(T.c.status == check_choice("status", status, PIPELINE_STATUSES))
        query = query.order_by(T.c.created_at.desc(), T.c.pipeline_id.desc()).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        return rows_to_arrow(list(T.columns), self.session.execute(query).all())

    def ids_of_run(self, run_id: str) -> sa.Select[Any]:
        """A subquery of the run's pipeline ids, for set-based deletes."""
        return sa.select(T.c.pipeline_id).where(T.c.run_id == run_id)

    def delete_of_run(self, run_id: str) -> int:
        forget_known(self.session)
        return rows_affected(self.session, sa.delete(T).where(T.c.run_id == run_id))
