"""Data access for step logs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from nirs4all_store.models import Log, Pipeline
from nirs4all_store.repositories.affected import rows_affected
from nirs4all_store.repositories.base import forget_known, insert_rows, rows_to_arrow
from nirs4all_store.types import utcnow
from nirs4all_store.validation import (
    LOG_LEVELS,
    check_choice,
    check_id,
    check_int,
    check_json,
    check_number,
    check_text,
    new_id,
)

T = Log.__table__

_FIELDS = ("step_idx", "operator_class", "event", "duration_ms", "message", "details", "level")
P = Pipeline.__table__


class LogRepository:
    """Step logs of pipelines (durations, warnings, errors)."""

    table = T

    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self,
        pipeline_id: str,
        step_idx: int,
        operator_class: str | None,
        event: str,
        duration_ms: float | None = 0.0,
        message: str | None = None,
        details: Any = None,
        level: str = "info",
    ) -> str:
        row = self.validate(pipeline_id, locals())
        self.session.execute(sa.insert(T).values(**row))
        return row["log_id"]

    def create_many(
        self, entries: Sequence[Mapping[str, Any]], pipeline_id: str | None = None
    ) -> list[str]:
        """Insert many log rows with one executemany: all of `pipeline_id`, or each of the
        `pipeline_id` its entry names (parents are the caller's job)."""
        rows = self.validate_many(entries, pipeline_id)
        self.insert_many(rows)
        return [row["log_id"] for row in rows]

    def insert_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows `validate` made (their pipelines are the caller's job)."""
        insert_rows(self.session, T, rows)

    @classmethod
    def validate_many(
        cls, entries: Sequence[Mapping[str, Any]], pipeline_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Clean rows for `create_many`'s entries (unknown keys refused by name)."""
        allowed = set(_FIELDS) if pipeline_id is not None else {*_FIELDS, "pipeline_id"}
        unknown = {k for e in entries for k in e} - allowed
        if unknown:
            raise ValueError(
                f"unknown log fields {sorted(unknown)}; expected some of {sorted(allowed)}"
            )
        return [
            cls.validate(entry.get("pipeline_id") if pipeline_id is None else pipeline_id, entry)
            for entry in entries
        ]

    @staticmethod
    def validate(pipeline_id: str, entry: Mapping[str, Any]) -> dict[str, Any]:
        """A clean logs row for `entry` (keys as `log_step`) of pipeline `pipeline_id`."""
        return {
            "log_id": new_id(),
            "pipeline_id": check_id("pipeline_id", pipeline_id),
            "step_idx": check_int("step_idx", entry.get("step_idx"), optional=False),
            "operator_class": check_text(
                "operator_class", entry.get("operator_class"), optional=True
            ),
            "event": check_text("event", entry.get("event")),
            "duration_ms": check_number("duration_ms", entry.get("duration_ms", 0.0)),
            "message": check_text("message", entry.get("message"), optional=True),
            "details": check_json("details", entry.get("details")),
            "level": check_choice("level", entry.get("level", "info"), LOG_LEVELS),
            "created_at": utcnow(),
        }

    def for_pipeline(
        self, pipeline_id: str, *, limit: int | None = None, offset: int = 0
    ) -> pa.Table:
        query = sa.select(T).where(T.c.pipeline_id == pipeline_id)
        # By step, then time (nirs4all's order: a step's entries stay together).
        query = query.order_by(T.c.step_idx, T.c.created_at, T.c.log_id).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        return rows_to_arrow(list(T.columns), self.session.execute(query).all())

    def run_summary(self, run_id: str) -> pa.Table:
        """One row per pipeline of the run: total duration, step count, warnings, errors."""
        is_level = lambda level: sa.func.coalesce(  # noqa: E731
            sa.func.sum(sa.case((T.c.level == level, 1), else_=0)), 0
        )
        query = (
            sa.select(
                P.c.pipeline_id,
                P.c.name,
                P.c.status,
                P.c.dataset_name,
                sa.func.coalesce(sa.func.sum(T.c.duration_ms), 0.0).label("total_duration_ms"),
                sa.func.count(sa.distinct(T.c.step_idx)).label("step_count"),
                sa.func.count(T.c.log_id).label("log_count"),
                is_level("warning").label("warning_count"),
                is_level("error").label("error_count"),
            )
            .select_from(P.outerjoin(T, T.c.pipeline_id == P.c.pipeline_id))
            .where(P.c.run_id == run_id)
            .group_by(P.c.pipeline_id, P.c.name, P.c.status, P.c.dataset_name, P.c.created_at)
            .order_by(P.c.created_at, P.c.pipeline_id)
        )
        rows = self.session.execute(query).all()
        names = [
            "pipeline_id",
            "name",
            "status",
            "dataset_name",
            "total_duration_ms",
            "step_count",
            "log_count",
            "warning_count",
            "error_count",
        ]
        types = [pa.string()] * 4 + [pa.float64()] + [pa.int64()] * 4
        return pa.Table.from_arrays(
            [pa.array([row[i] for row in rows], type=t) for i, t in enumerate(types)], names=names
        )

    def delete_of_pipelines(self, pipeline_ids: sa.Select[Any]) -> int:
        forget_known(self.session)
        return rows_affected(self.session, sa.delete(T).where(T.c.pipeline_id.in_(pipeline_ids)))
