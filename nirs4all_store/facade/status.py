"""Facade calls for applications: `status()`, `change_token()`, counts for paging, and runs
whose process died (`reap_stale_runs`, `heartbeat`)."""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nirs4all_store.db import engine as engines
from nirs4all_store.db import migrate
from nirs4all_store.facade.base import FacadeBase
from nirs4all_store.repositories import RunRepository
from nirs4all_store.repositories.predictions import apply_filters
from nirs4all_store.repositories.status import (
    STALE_RUN_SECONDS,
    TABLES,
    StatusRepository,
    run_status_expr,
    stale_cutoff,
)
from nirs4all_store.validation import RUN_STATUSES, check_choice, check_id, check_number


class StatusCalls(FacadeBase):
    """What a dashboard or a host application polls."""

    engine: Engine

    def change_token(self, run_id: str | None = None) -> str | None:
        """A short text that changes whenever a commit adds, removes or finishes rows: poll
        it to refresh a cache or a page (one SELECT; a file mtime is not one on PostgreSQL
        or under a WAL). With `run_id`, only that run's changes count (None for an unknown
        run)."""
        if run_id is None:
            return self._read("change_token", lambda s: StatusRepository(s).change_token())
        check_id("run_id", run_id)
        return self._read("change_token", lambda s: StatusRepository(s).run_token(run_id))

    def status(self) -> dict[str, Any]:
        """Backend, schema revision against this package's head, counts, sizes, last write."""

        def work(s: Any) -> dict[str, Any]:
            repo = StatusRepository(s)
            revision = migrate.current_revision(s.connection())
            return {
                "counts": repo.counts(),
                "last_write": repo.last_write(),
                "change_token": repo.change_token(),
                "schema_revision": revision,
            }

        found = self._read("status", work)
        db_file = engines.database_file(self.engine.url)
        artifacts = _artifact_files_size(self.vault.files)
        return {
            "backend": self.engine.dialect.name,
            "url": self.engine.url.render_as_string(hide_password=True),
            "workspace": None if self.path is None else str(self.path),
            "read_only": self.read_only,
            "schema_revision": found["schema_revision"],
            "head_revision": migrate.HEAD_REVISION,
            "pending_migration": found["schema_revision"] != migrate.HEAD_REVISION,
            "counts": found["counts"],
            "database_bytes": _file_size(db_file),
            "artifact_files": artifacts[0],
            "artifact_bytes": artifacts[1],
            "last_write": found["last_write"],
            "change_token": found["change_token"],
        }

    # -- counts (the totals of the paged list calls) --------------------------------------
    def count_runs(self, status: str | None = None, name: str | None = None) -> int:
        """How many runs `list_runs(status, name)` pages through."""
        T = TABLES["runs"]
        query = sa.select(sa.func.count()).select_from(T)
        if status is not None:
            check_choice("status", status, RUN_STATUSES)
            query = query.where(run_status_expr(stale_cutoff(STALE_RUN_SECONDS)) == status)
        if name is not None:
            query = query.where(T.c.name == name)
        return self._read("count_runs", lambda s: int(s.execute(query).scalar() or 0))

    def count_pipelines(
        self, run_id: str | None = None, dataset_name: str | None = None, status: str | None = None
    ) -> int:
        """How many pipelines `list_pipelines(run_id, dataset_name, status)` pages through."""
        T = TABLES["pipelines"]
        query = sa.select(sa.func.count()).select_from(T)
        for column, value in (
            ("run_id", run_id),
            ("dataset_name", dataset_name),
            ("status", status),
        ):
            if value is not None:
                query = query.where(T.c[column] == value)
        return self._read("count_pipelines", lambda s: int(s.execute(query).scalar() or 0))

    def count_predictions(self, *, run_id: str | None = None, **filters: Any) -> int:
        """How many predictions `query_predictions(run_id=..., **filters)` pages through."""
        if run_id is not None:
            check_id("run_id", run_id)
        query = apply_filters(
            sa.select(sa.func.count()).select_from(TABLES["predictions"]), filters, run_id=run_id
        )
        return self._read("count_predictions", lambda s: int(s.execute(query).scalar() or 0))

    def count_chains(self, pipeline_id: str | None = None) -> int:
        """How many chains (of one pipeline when given)."""
        T = TABLES["chains"]
        query = sa.select(sa.func.count()).select_from(T)
        if pipeline_id is not None:
            query = query.where(T.c.pipeline_id == check_id("pipeline_id", pipeline_id))
        return self._read("count_chains", lambda s: int(s.execute(query).scalar() or 0))

    def count_artifacts(self) -> int:
        """How many artifact rows."""
        query = sa.select(sa.func.count()).select_from(TABLES["artifacts"])
        return self._read("count_artifacts", lambda s: int(s.execute(query).scalar() or 0))

    # -- runs whose process died -------------------------------------------------------------
    def heartbeat(self, run_id: str) -> None:
        """Say the process recording `run_id` is alive (run() does it at every pipeline it
        records; call it from long steps of your own)."""
        check_id("run_id", run_id)

        def work(s: Any) -> None:
            RunRepository(s).require(run_id)
            StatusRepository(s).heartbeat_run(run_id)

        self._run("heartbeat", work)

    def reap_stale_runs(self, older_than: float = STALE_RUN_SECONDS) -> list[str]:
        """Mark 'interrupted' every 'running' run without a heartbeat for `older_than`
        seconds (its process died); returns their ids. Readers already report them so."""
        seconds = check_number("older_than", older_than, optional=False)
        if seconds is None or not 0 <= seconds < float("inf"):
            raise ValueError(
                f"older_than must be a finite number of seconds >= 0, got {older_than!r}"
            )
        cutoff = stale_cutoff(seconds)

        def work(s: Any) -> list[str]:
            repo = StatusRepository(s)
            stale = repo.stale_runs(cutoff)
            repo.mark_interrupted(
                stale, f"interrupted: no heartbeat for {seconds:g} s (the process stopped)"
            )
            return stale

        return self._run("reap_stale_runs", work)


def _file_size(path: Any) -> int | None:
    if path is None or not os.path.exists(path):
        return None
    total = os.path.getsize(path)
    for suffix in (".wal", "-wal"):
        if os.path.exists(f"{path}{suffix}"):
            total += os.path.getsize(f"{path}{suffix}")
    return total


def _artifact_files_size(files: Any) -> tuple[int, int]:
    """(files, bytes) of the artifact files (`ArtifactFiles.iter_files`: no temporaries,
    no bookkeeping files, symlinks not followed)."""
    count = size = 0
    for relpath in files.iter_files():
        path = files.path(relpath)
        if not os.path.islink(path):
            count += 1
            size += os.path.getsize(path)
    return count, size
