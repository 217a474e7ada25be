"""`WorkspaceStore`: the facade that composes repositories in units of work.

A workspace is a folder: `store.duckdb` (or a database URL), `artifacts/` (content-addressed
files), `exports/` (created on explicit export only). Every public method runs in one
transaction, or joins the one opened by `store.transaction()`. Cross-aggregate rules
(reference counts, cascading deletes) live here, set-based, inside one transaction.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session, sessionmaker

from nirs4all_store.artifacts.vault import PENDING_UNLINKS, ArtifactVault
from nirs4all_store.db import engine as engines
from nirs4all_store.db.direct import DirectWriter
from nirs4all_store.db.session import UnitOfWork
from nirs4all_store.facade.artifacts import ArtifactCalls
from nirs4all_store.facade.results import ResultCalls
from nirs4all_store.facade.runs import RunCalls
from nirs4all_store.facade.status import StatusCalls
from nirs4all_store.facade.workbench import WorkbenchCalls
from nirs4all_store.facade.write_behind import FLUSH_INTERVAL_S, WriteBehind
from nirs4all_store.facade.write_queue import WriteQueue
from nirs4all_store.opening import OpenOptions, open_engine
from nirs4all_store.repositories.direct_rows import DirectRows

ARTIFACTS_DIRNAME = "artifacts"


class WorkspaceStore(RunCalls, ResultCalls, ArtifactCalls, StatusCalls, WorkbenchCalls):
    """Persistence of runs, pipelines, chains, predictions, arrays, artifacts and logs.

    `WorkspaceStore("workspace")` opens (creating if needed) a DuckDB workspace folder.
    `url=` (or the NIRS4ALL_STORE_URL environment variable) puts the database on SQLite or
    PostgreSQL instead, with artifacts still in the folder; an `Engine` can be handed in
    too. Tabular results are `pyarrow.Table`s (zero-copy to polars/pandas); single records
    are plain dicts. Use it as a context manager or call `close()`.
    """

    def __init__(
        self,
        workspace: str | os.PathLike[str] | URL | Engine | None = None,
        *,
        url: str | URL | Engine | None = None,
        artifacts_dir: str | os.PathLike[str] | None = None,
        lock_timeout: float = 10.0,
        hold_lock: bool | None = None,
        read_only: bool = False,
        schema: str | None = None,
        pool: dict[str, Any] | None = None,
        write_behind: bool | float = False,
    ) -> None:
        # Checked before anything is opened or created: a refused setting leaves no engine
        # (and no DuckDB file lock) behind.
        flush_interval = write_behind_interval(write_behind, read_only)
        if workspace is not None and engines.looks_like_url(workspace):
            if url is not None:
                raise ValueError("give the database either as workspace or as url=, not both")
            url, workspace = workspace, None  # type: ignore[assignment]
        if url is None:
            url = engines.url_from_env()
        if workspace is None and artifacts_dir is None:
            raise ValueError(
                "a workspace folder is needed for artifacts: pass WorkspaceStore(path, url=...) "
                "or artifacts_dir=..."
            )
        self.path = Path(workspace).expanduser().resolve() if workspace is not None else None
        self.artifacts_path = (
            Path(artifacts_dir).expanduser().resolve()
            if artifacts_dir is not None
            else self.path / ARTIFACTS_DIRNAME  # type: ignore[operator]
        )
        if self.path is not None and self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"workspace path {self.path} exists and is not a folder")
        self.read_only = bool(read_only)
        if not self.read_only:  # a read-only handle never creates anything
            if self.path is not None:
                self.path.mkdir(parents=True, exist_ok=True)
            self.artifacts_path.mkdir(parents=True, exist_ok=True)
        self.lock_timeout = float(lock_timeout)
        self.hold_lock = hold_lock
        self._owns_engine = not isinstance(url, Engine)
        self._closed = False
        self._heartbeats, self._pipeline_runs = {}, {}
        self.engine = open_engine(
            self.path,
            url,
            options=OpenOptions(
                lock_timeout=self.lock_timeout,
                hold_lock=hold_lock,
                read_only=self.read_only,
                schema=schema,
                pool=pool,
                artifacts=self.artifacts_path,
            ),
        )
        self._uow = UnitOfWork(
            sessionmaker(self.engine, expire_on_commit=False), read_only=self.read_only
        )
        self.vault = ArtifactVault(self.artifacts_path, self.path or self.artifacts_path, self._uow)
        if self.engine.dialect.name == "duckdb" and not self.read_only:
            self._direct = self.vault.direct = DirectRows(DirectWriter(self.engine))
        if flush_interval is not None:
            self._behind = WriteBehind(self._flush_batch, interval=flush_interval)

    def _flush_batch(self, batch: WriteQueue) -> None:
        """A write-behind batch in one unit of work; its artifact files are written under
        the shared artifact lock (verify/gc cannot take them for orphans meanwhile)."""
        guard = self.vault.lock.shared() if batch.artifacts else nullcontext()
        with guard:
            self._uow.run(batch.flush, "write-behind flush")

    # -- opening -------------------------------------------------------------------------
    @property
    def url(self) -> URL:
        """The database URL this store opened."""
        return self.engine.url

    @property
    def db_file(self) -> Path | None:
        """The database file (DuckDB / SQLite), None for a server database."""
        return engines.database_file(self.engine.url)

    # -- lifecycle -----------------------------------------------------------------------
    def flush(self) -> None:
        """Write the row calls queued so far (write-behind, or inside `transaction()`)."""
        self._check_open()
        self._sync()

    def close(self) -> None:
        """Write what is queued, then release the database (and its file lock); closing
        twice is fine. A failed write-behind flush is raised here, after the release."""
        if self._closed:
            return
        try:
            if self._behind is not None:
                self._behind.close()
        finally:
            self._closed = True
            if self._owns_engine:
                self.engine.dispose()

    def __enter__(self) -> WorkspaceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.path or self.engine.url.render_as_string(hide_password=True)
        return f"WorkspaceStore({str(where)!r})"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Group many calls into one commit (all or nothing); yields the Session.

        Row calls inside it (begin/complete_pipeline, save_chain(s), save_prediction(s),
        save_prediction_arrays, log_step(s), save_logs) are checked at once and written in
        bulk before the commit, or before any read or other write made through the store;
        SQL run directly on the yielded Session sees them after `store.flush()` (entering a
        nested `transaction()` flushes too)."""
        self._check_open()
        # Write-behind rows go first (they were called first); a nested block sees the rows
        # queued so far, so SQL or repositories used on the yielded Session see them.
        self._sync()
        outermost = self._uow.current is None
        with self._uow.transaction() as session:
            pending = session.info.setdefault(PENDING_UNLINKS, [])
            yield session
        # Committed: only now may the files of artifact rows deleted inside it go.
        if outermost:
            self.vault.unlink_pending(pending)


def write_behind_interval(setting: bool | float, read_only: bool) -> float | None:
    """The flush interval `write_behind=` asks for: None (off), FLUSH_INTERVAL_S for True,
    or the seconds given; anything else is a ValueError naming it."""
    if setting is False:
        return None
    interval = FLUSH_INTERVAL_S if setting is True else setting
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
        raise ValueError(
            f"write_behind must be True, False or a flush interval in seconds > 0, got {setting!r}"
        )
    if read_only:
        raise ValueError("write_behind needs a writable store (read_only=True given)")
    return float(interval)
