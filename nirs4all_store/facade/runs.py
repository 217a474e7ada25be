"""Facade calls for runs, pipelines and step logs."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from nirs4all_store.facade.base import FacadeBase, as_records, delete_pipeline_data
from nirs4all_store.repositories import LogRepository, PipelineRepository, RunRepository
from nirs4all_store.repositories.base import require_ids
from nirs4all_store.repositories.status import StatusRepository
from nirs4all_store.validation import check_id, check_page

#: How often a recording store refreshes its run's heartbeat (on begin/complete_pipeline):
#: a run is reported 'interrupted' after `STALE_RUN_SECONDS` (30 min) without one, so once a
#: minute is ample, and each refresh is an UPDATE (a commit of its own on the direct path).
HEARTBEAT_EVERY_S = 60.0


class RunCalls(FacadeBase):
    """Runs (begin/complete/fail/list), their pipelines and the pipelines' step logs."""

    # -- heartbeats ----------------------------------------------------------------------
    def _heartbeat_due(self, run_id: str) -> bool:
        """Whether this store last refreshed `run_id`'s heartbeat `HEARTBEAT_EVERY_S` ago."""
        last = self._heartbeats.get(run_id)
        return last is None or time.monotonic() - last >= HEARTBEAT_EVERY_S

    def _beat(self, run_id: str) -> bool:
        """True (and noted as done now) when the heartbeat of `run_id` is due."""
        if not self._heartbeat_due(run_id):
            return False
        if len(self._heartbeats) >= 10_000:
            self._heartbeats.clear()
        self._heartbeats[run_id] = time.monotonic()
        return True

    def _began(self, pipeline_id: str, run_id: str) -> str:
        """Remember whose pipeline this is (its completion refreshes that run's heartbeat)."""
        if len(self._pipeline_runs) >= 10_000:
            self._pipeline_runs.clear()
        self._pipeline_runs[pipeline_id] = run_id
        return pipeline_id

    # -- runs ----------------------------------------------------------------------------
    def begin_run(
        self, name: str, config: Any = None, datasets: Any = None, *, run_id: str | None = None
    ) -> str:
        """Start a run (status 'running'); returns its id (`run_id` to choose it)."""
        created = self._run(
            "begin_run", lambda s: RunRepository(s).create(name, config, datasets, run_id=run_id)
        )
        self._beat(created)  # created with a fresh heartbeat
        return created

    def complete_run(self, run_id: str, summary: Any = None) -> None:
        """Mark a run completed, with an optional JSON summary; KeyError for an unknown id."""
        self._run(
            "complete_run", lambda s: RunRepository(s).finish(run_id, "completed", summary=summary)
        )

    def fail_run(self, run_id: str, error: str) -> None:
        """Mark a run failed with its error message; KeyError for an unknown id."""
        self._run("fail_run", lambda s: RunRepository(s).finish(run_id, "failed", error=error))

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """One run (JSON columns decoded, status as a reader reports it), None if unknown."""
        return self._read("get_run", lambda s: RunRepository(s).get(run_id))

    def list_runs(
        self,
        status: str | None = None,
        name: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> pa.Table:
        """Runs, newest first (`count_runs(status, name)` is the total to page through)."""
        limit, offset = check_page(limit, offset)
        return self._read(
            "list_runs",
            lambda s: RunRepository(s).list(status=status, name=name, limit=limit, offset=offset),
        )

    # -- pipelines -----------------------------------------------------------------------
    def begin_pipeline(
        self,
        run_id: str,
        name: str,
        expanded_config: Any = None,
        generator_choices: Any = None,
        dataset_name: str = "",
        dataset_hash: str | None = None,
        *,
        pipeline_id: str | None = None,
    ) -> str:
        """Start a pipeline of a run; KeyError for an unknown run.

        `pipeline_id` lets a caller choose the id (e.g. to record the pipeline later or from
        another thread); by default a new UUID is made.
        """
        queueing = self._queueing("begin_pipeline")
        row = PipelineRepository.validate(
            run_id, name, expanded_config, generator_choices, dataset_name, dataset_hash,
            pipeline_id=pipeline_id,
        )  # fmt: skip
        if queueing:
            return self._enqueue("begin_pipeline", lambda q, look: q.add_pipelines([row], look))[0]
        direct = self._direct
        if direct is not None and not self._heartbeat_due(run_id) and direct.pipeline(row):
            return self._began(row["pipeline_id"], run_id)
        beat = self._beat(run_id)

        def work(s: Session) -> str:
            RunRepository(s).require(run_id)
            PipelineRepository(s).insert_many([row])
            if beat:
                StatusRepository(s).heartbeat_run(run_id)  # the run's process is alive
            return str(row["pipeline_id"])

        return self._began(self._run("begin_pipeline", work), run_id)

    def save_pipelines(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        """Many pipelines in one statement, e.g. pipelines that already ran.

        Each record holds `begin_pipeline`'s arguments and optionally `status` ('running',
        'completed', or 'failed' with `error`), `best_val`, `best_test`, `metric` and
        `duration_ms`. KeyError (nothing written) for an unknown run. Returns the ids.
        """
        rows = [PipelineRepository.validate(**record) for record in as_records(records)]
        if self._queueing("save_pipelines"):
            return self._enqueue("save_pipelines", lambda q, look: q.add_pipelines(rows, look))

        def work(s: Session) -> list[str]:
            require_ids(s, RunRepository.table.c.run_id, {row["run_id"] for row in rows})
            PipelineRepository(s).insert_many(rows)
            StatusRepository(s).heartbeat_of_pipelines([row["pipeline_id"] for row in rows])
            return [row["pipeline_id"] for row in rows]

        return self._run("save_pipelines", work)

    def complete_pipeline(
        self,
        pipeline_id: str,
        best_val: float | None = None,
        best_test: float | None = None,
        metric: str | None = None,
        duration_ms: float | None = None,
    ) -> None:
        """Mark a pipeline completed with its best scores, metric and duration."""
        queueing = self._queueing("complete_pipeline")
        check_id("pipeline_id", pipeline_id)
        values = PipelineRepository.completion(best_val, best_test, metric, duration_ms)
        if queueing:
            self._enqueue(
                "complete_pipeline", lambda q, look: q.add_completion(pipeline_id, values, look)
            )
            return
        run_id = self._pipeline_runs.get(pipeline_id)
        beat = run_id is None or self._beat(run_id)
        direct = self._direct
        if direct is not None and not beat and direct.update_pipeline(pipeline_id, values):
            return

        def work(s: Session) -> None:
            PipelineRepository(s).apply_completion(pipeline_id, values)
            if beat:
                StatusRepository(s).heartbeat_of_pipelines([pipeline_id])

        self._run("complete_pipeline", work)

    def fail_pipeline(self, pipeline_id: str, error: str) -> None:
        """Mark a pipeline failed; its predictions, chains and logs go, references released."""

        def work(s: Session) -> None:
            pipelines = PipelineRepository(s)
            pipelines.require(pipeline_id)
            delete_pipeline_data(s, sa.select(sa.literal(pipeline_id)))
            pipelines.fail(pipeline_id, error)

        self._run("fail_pipeline", work)

    def get_pipeline(self, pipeline_id: str) -> dict[str, Any] | None:
        """One pipeline (JSON columns decoded), None if unknown."""
        return self._read("get_pipeline", lambda s: PipelineRepository(s).get(pipeline_id))

    def list_pipelines(
        self,
        run_id: str | None = None,
        dataset_name: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> pa.Table:
        """Pipelines, newest first."""
        return self._read(
            "list_pipelines",
            lambda s: PipelineRepository(s).list(
                run_id=run_id, dataset_name=dataset_name, status=status, limit=limit, offset=offset
            ),
        )

    # -- logs ----------------------------------------------------------------------------
    def log_step(
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
        """Record one step-log entry of a pipeline; returns its id."""
        entry = {k: v for k, v in locals().items() if k not in ("self", "pipeline_id")}
        queueing = self._queueing("log_step")
        row = LogRepository.validate(pipeline_id, entry)
        if queueing:
            return self._enqueue("log_step", lambda q, look: q.add_logs([row], look))[0]
        if self._direct is not None and self._direct.log(row):
            return str(row["log_id"])

        def work(s: Session) -> str:
            PipelineRepository(s).require(pipeline_id)
            LogRepository(s).insert_many([row])
            return str(row["log_id"])

        return self._run("log_step", work)

    def log_steps(self, pipeline_id: str, entries: Sequence[Mapping[str, Any]]) -> list[str]:
        """Many `log_step` entries of one pipeline in one statement (keys as `log_step`)."""
        if self._queueing("log_steps"):
            rows = LogRepository.validate_many(as_records(entries, "entries"), pipeline_id)
            return self._enqueue("log_steps", lambda q, look: q.add_logs(rows, look))

        def work(s: Session) -> list[str]:
            PipelineRepository(s).require(pipeline_id)
            return LogRepository(s).create_many(entries, pipeline_id)

        return self._run("log_steps", work)

    def save_logs(self, entries: Sequence[Mapping[str, Any]]) -> list[str]:
        """Log entries of any pipelines in one statement: keys as `log_step`, `pipeline_id`
        included. KeyError (nothing written) if a pipeline is unknown."""
        entries = as_records(entries, "entries")
        pipeline_ids = {check_id("pipeline_id", e.get("pipeline_id")) for e in entries}
        if self._queueing("save_logs"):
            rows = LogRepository.validate_many(entries)
            return self._enqueue("save_logs", lambda q, look: q.add_logs(rows, look))

        def work(s: Session) -> list[str]:
            require_ids(s, PipelineRepository.table.c.pipeline_id, pipeline_ids)
            return LogRepository(s).create_many(entries)

        return self._run("save_logs", work)

    def get_pipeline_log(
        self, pipeline_id: str, limit: int | None = None, offset: int = 0
    ) -> pa.Table:
        """The step log of a pipeline, in order (paged with `limit`/`offset`)."""
        limit, offset = check_page(limit, offset)
        return self._read(
            "get_pipeline_log",
            lambda s: LogRepository(s).for_pipeline(pipeline_id, limit=limit, offset=offset),
        )

    def get_run_log_summary(self, run_id: str) -> pa.Table:
        """One row per pipeline: total duration, step count, warning and error counts."""
        return self._read("get_run_log_summary", lambda s: LogRepository(s).run_summary(run_id))
