"""Opening the store for one request: where the workspace is, and the per-request handle.

The DuckDB file admits one process at a time, so the dashboard never keeps the workspace
open between requests: `reader()` opens a store for one request (a short burst of calls)
and closes it. Opening costs 29-30 ms in docs/performance.md (measured 55-65 ms on the
2-core VM with the other core busy), then each call ~1-2 ms: cheap next to a page render,
and the writer of a run gets the file back as soon as the page is built.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nirs4all_store import WorkspaceLockedError, WorkspaceStore

__all__ = ["Source", "WorkspaceBusy", "lookup", "open_store", "reader", "rows_of"]

_DB_FILENAME = "store.duckdb"
_BURST = threading.Lock()  # one open store per process at a time (one DuckDB handle)


class WorkspaceBusy(Exception):
    """The workspace database is held by another process (DuckDB's one-process lock)."""


@dataclass(frozen=True)
class Source:
    """Where the workspace is: a folder (DuckDB) and/or a database URL."""

    workspace: Path
    url: str | None = None
    lock_timeout: float = 5.0

    @classmethod
    def of(cls, workspace: str | os.PathLike[str] | None, url: str | None, **kw: Any) -> Source:
        """Checked at start: a read-only dashboard must never create a workspace."""
        url = url or os.environ.get("NIRS4ALL_STORE_URL") or None
        folder = Path(workspace or "workspace").expanduser().resolve()
        if not folder.is_dir():
            raise ValueError(f"workspace folder {folder} does not exist (give --workspace PATH)")
        if url is None and not (folder / _DB_FILENAME).is_file():
            raise ValueError(f"{folder} holds no {_DB_FILENAME}: not a nirs4all-store workspace")
        return cls(folder, url, **kw)

    def describe(self) -> str:
        if self.url is None:
            return str(self.workspace)
        import sqlalchemy as sa

        return sa.make_url(self.url).render_as_string(hide_password=True)


def open_store(source: Source) -> WorkspaceStore:
    """A read-only handle: the dashboard never creates, migrates or writes anything."""
    return WorkspaceStore(
        source.workspace, url=source.url, lock_timeout=source.lock_timeout, read_only=True
    )


@contextmanager
def reader(source: Source) -> Iterator[WorkspaceStore]:
    """A store open for one request; closed (file released) when the block ends."""
    with _BURST:
        try:
            store = open_store(source)
        except WorkspaceLockedError as exc:
            raise WorkspaceBusy(str(exc)) from None
        try:
            yield store
        except WorkspaceLockedError as exc:
            raise WorkspaceBusy(str(exc)) from None
        finally:
            store.close()


def rows_of(table: Any) -> list[dict[str, Any]]:
    return list(table.to_pylist())


def lookup(fn: Any, key: str) -> dict[str, Any] | None:
    """A `get_*` call where a malformed id (ValueError) means 'unknown', as for a 404."""
    try:
        return fn(key)
    except ValueError:
        return None
