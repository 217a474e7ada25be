"""Facade calls for artifacts and for what deletes them: `delete_run`, `gc_artifacts`,
`verify`, `vacuum`. The vault (`nirs4all_store.artifacts.vault`) does the file work."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from nirs4all_store.artifacts.vault import DEFAULT_GRACE_SECONDS
from nirs4all_store.artifacts.verify import (
    VERIFY_RECORD,
    VerifyReport,
    read_verify_record,
    record_verify,
    verify_vault,
)
from nirs4all_store.db.vacuum import vacuum_database
from nirs4all_store.facade.base import FacadeBase, delete_pipeline_data
from nirs4all_store.repositories import ArtifactRepository, PipelineRepository, RunRepository
from nirs4all_store.types import utcnow
from nirs4all_store.validation import check_id, check_page


class ArtifactCalls(FacadeBase):
    """Fitted objects as content-addressed files, and the deletions that free them."""

    engine: Engine
    _owns_engine: bool

    def save_artifact(
        self,
        obj: Any,
        operator_class: str | None = None,
        artifact_type: str | None = None,
        format: str = "joblib",
    ) -> str:
        """Serialise and store `obj` content-addressed; identical bytes share one id and file.

        The file is in place (atomically) before the row commits. No reference is taken:
        `save_chain` does that. An unreferenced artifact survives `gc_artifacts` for its
        grace period.
        """
        return self.save_artifacts([(obj, operator_class, artifact_type, format)])[0]

    def save_artifacts(self, items: Sequence[Any]) -> list[str]:
        """`save_artifact` for many objects at once: one lookup, one insert, one commit.

        Each item is `(obj, operator_class, artifact_type[, format])` or a dict with those
        keys (`obj` required, `format` defaults to "joblib"). Returns the ids in order.
        """
        if self._queueing("save_artifacts"):
            prepared = self.vault.prepare(items)
            return self._enqueue(
                "save_artifacts", lambda q, look: q.add_artifacts(self.vault, prepared, look)
            )
        ids = self.vault.save_many(items)
        self._known_artifacts(ids)
        return ids

    def get_artifact(self, artifact_id: str) -> dict[str, Any] | None:
        """The artifact's row (path, hash, format, size, reference count), or None."""
        self._check_open()
        self._sync()  # its reference count counts the chains queued before this call
        return self.vault.get(artifact_id)

    def get_artifact_path(self, artifact_id: str) -> Path:
        """Absolute path of an artifact's file (stable across reopen)."""
        self._check_open()
        self._sync()  # a queued artifact's file is written by the flush
        return self.vault.path(artifact_id)

    def load_artifact(self, artifact_id: str) -> Any:
        """The stored object, after checking its bytes against the recorded SHA-256."""
        self._check_open()
        self._sync()
        return self.vault.load(artifact_id)

    def list_artifacts(self, limit: int | None = None, offset: int = 0) -> pa.Table:
        """Artifact rows, oldest first (`count_artifacts()` is the total to page through)."""
        self._check_open()
        self._sync()
        limit, offset = check_page(limit, offset)
        table = self.vault.list()
        return table.slice(offset, limit) if (limit is not None or offset) else table

    def delete_run(self, run_id: str, delete_artifacts: bool = True) -> int:
        """Delete a run and everything under it in one transaction; returns rows deleted.

        With `delete_artifacts`, artifacts whose last reference this call released are
        removed too (rows in the transaction, files after it commits), except bytes saved
        again (by any process) since their last reference, for the grace period of
        `gc_artifacts`: they may be about to be referenced by a new chain.
        """
        check_id("run_id", run_id)

        def work(s: Session) -> tuple[int, list[dict[str, Any]]]:
            runs = RunRepository(s)
            runs.require(run_id)
            pipeline_ids = PipelineRepository(s).ids_of_run(run_id)
            deleted, released = delete_pipeline_data(s, pipeline_ids)
            deleted += PipelineRepository(s).delete_of_run(run_id)
            deleted += runs.delete(run_id)
            gone: list[dict[str, Any]] = []
            if delete_artifacts and released:
                repo = ArtifactRepository(s)
                cutoff = utcnow() - dt.timedelta(seconds=DEFAULT_GRACE_SECONDS)
                gone = repo.unreferenced(released, young_cutoff=cutoff)
                deleted += repo.delete([g["artifact_id"] for g in gone], young_cutoff=cutoff)
            return deleted, gone

        with self.vault.deleting():
            deleted, gone = self._run("delete_run", work)
            self.vault.unlink_unused(gone)
        return deleted

    def gc_artifacts(
        self, grace_seconds: float = DEFAULT_GRACE_SECONDS, dry_run: bool = False
    ) -> int | list[dict[str, Any]]:
        """Remove artifacts no chain references (rows first, then files).

        An artifact saved less than `grace_seconds` ago that no chain has referenced since
        is kept (it may be in flight in another process); `grace_seconds=0` collects those
        too. Returns the number removed, or with `dry_run=True` the list of artifacts (id,
        path, hash) that would go.
        """
        if dry_run:
            self._check_open()
        else:
            self._check_writable("gc_artifacts")
        self._sync()  # queued chains hold references too
        try:
            return self.vault.gc(grace_seconds, dry_run)
        finally:
            self._forget_artifacts()

    def verify(
        self,
        repair: bool = False,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        force: bool = False,
    ) -> VerifyReport:
        """Check reference counts, files and hashes; `repair=True` fixes counts and orphans.

        Repair removes orphan files older than `grace_seconds` only. It refuses to remove
        every file of the artifacts folder when no row claims any (a missing or wrong
        database) unless `force=True`.
        """
        self._check_open()
        self._sync()
        start = time.perf_counter()
        try:
            report = verify_vault(
                self.vault, repair=repair, grace_seconds=grace_seconds, force=force
            )
        finally:
            self._forget_artifacts()
        if not self.read_only:  # a read-only handle writes nothing, this record included
            record_verify(self._verify_record_path(), report, repair, time.perf_counter() - start)
        return report

    def last_verify(self) -> dict[str, Any] | None:
        """The result of the last `verify()` run on this workspace by a writable store:
        `checked_at` (UTC), `ok`, `repair`, `duration_s` and the non-empty `problems`;
        None if none was recorded (or the record is unreadable)."""
        self._check_open()
        return read_verify_record(self._verify_record_path())

    def _verify_record_path(self) -> Path:
        return (self.path or self.artifacts_path.parent) / VERIFY_RECORD

    def vacuum(self) -> dict[str, Any]:
        """Reclaim space (DuckDB: copy into a fresh file and swap atomically)."""
        self._check_writable("vacuum")
        self._sync()
        return vacuum_database(self.engine, owns_engine=self._owns_engine)
