"""What every group of facade calls shares: the unit of work, the vault, records checks, and
the cross-aggregate rule of deleting a pipeline's data."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nirs4all_store.artifacts.vault import ArtifactVault
from nirs4all_store.db.session import UnitOfWork, before_commit
from nirs4all_store.errors import ReadOnlyStoreError, StoreClosedError
from nirs4all_store.facade.write_behind import WriteBehind
from nirs4all_store.facade.write_queue import Lookup, WriteQueue
from nirs4all_store.repositories import (
    ArtifactRepository,
    ChainRepository,
    LogRepository,
    PredictionRepository,
)
from nirs4all_store.repositories.direct_rows import DirectRows

T = TypeVar("T")
#: Session.info key of an explicit transaction's write queue.
QUEUE_KEY = "nirs4all_store.write_queue"


class FacadeBase:
    """State shared by the facade's call groups (set by `WorkspaceStore.__init__`)."""

    path: Path | None
    vault: ArtifactVault
    read_only: bool
    _uow: UnitOfWork
    _closed: bool
    _behind: WriteBehind | None = None
    #: Single row calls as one autocommitted statement each (DuckDB, `repositories.direct_rows`).
    _direct: DirectRows | None = None
    #: run_id -> when this store last refreshed its heartbeat (time.monotonic()).
    _heartbeats: dict[str, float]
    #: pipeline_id -> run_id of the pipelines this store began.
    _pipeline_runs: dict[str, str]

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("this WorkspaceStore is closed")

    def _check_writable(self, what: str) -> None:
        self._check_open()
        if self.read_only:
            raise ReadOnlyStoreError(
                f"{what} writes, but this WorkspaceStore was opened with read_only=True"
            )

    def _run(self, what: str, fn: Callable[[Session], T], **kw: Any) -> T:
        """`fn` in a unit of work that may write (refused on a read-only store); queued row
        calls are written first, and forgotten parents looked up again after (it may have
        deleted them)."""
        self._check_writable(what)
        self._sync()
        try:
            return self._uow.run(fn, what, **kw)
        finally:
            queue = self._open_queue()
            if queue is not None:
                queue.known.forget()

    def _read(self, what: str, fn: Callable[[Session], T]) -> T:
        """`fn` in a unit of work that only reads: no write lock on any backend. It sees
        every row call made before it (queued rows are written first)."""
        self._check_open()
        self._sync()
        return self._uow.run(fn, what, read=True)

    # -- write-behind (facade.write_queue) -------------------------------------------------
    def _queueing(self, what: str) -> bool:
        """Whether row call `what` is queued: inside `transaction()`, or write-behind."""
        self._check_writable(what)
        return self._uow.current is not None or self._behind is not None

    def _open_queue(self) -> WriteQueue | None:
        session = self._uow.current
        if session is not None:
            return session.info.get(QUEUE_KEY)
        return self._behind.queue if self._behind is not None else None

    def _enqueue(self, what: str, add: Callable[[WriteQueue, Lookup[Any]], T]) -> T:
        """`add(queue, lookup)` on the open transaction's queue or the write-behind one;
        `lookup` runs a parent check in the transaction (or in a short read)."""
        session = self._uow.current
        if session is not None:
            queue = session.info.get(QUEUE_KEY)
            if queue is None:
                queue = session.info[QUEUE_KEY] = WriteQueue()
                before_commit(session, queue.flush)
            return add(queue, lambda fn: self._uow.run(fn, what))
        behind = self._behind
        assert behind is not None  # _queueing said so
        behind.check()
        with behind.lock:
            result = add(behind.queue, lambda fn: self._uow.run(fn, what, read=True))
        behind.added()
        return result

    def _sync(self) -> None:
        """Write the queued row calls now (before a read or another write)."""
        session = self._uow.current
        if session is not None:
            queue = session.info.get(QUEUE_KEY)
            if queue is not None and len(queue):
                self._uow.run(queue.flush, "flush")
        elif self._behind is not None:
            self._behind.drain()
            self._behind.check()

    def _forget_artifacts(self) -> None:
        """After gc/verify: an artifact a queued chain will name may be gone."""
        queue = self._open_queue()
        if queue is not None:
            queue.known.artifacts.clear()

    def _known_artifacts(self, ids: Sequence[str]) -> None:
        """Artifacts just saved need no look-up when a queued chain names them."""
        queue = self._open_queue()
        if queue is not None:
            queue.known.artifacts.update(ids)


def as_records(records: Any, name: str = "records") -> Sequence[Mapping[str, Any]]:
    """`records` of a bulk call, checked: a sequence (not one dict) of dicts."""
    if isinstance(records, Mapping) or not isinstance(records, Sequence):
        raise TypeError(f"{name} must be a sequence of dicts, got {type(records).__name__}")
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise TypeError(f"{name}[{i}] must be a dict, got {type(record).__name__}")
    return records


def delete_pipeline_data(s: Session, pipeline_ids: sa.Select[Any]) -> tuple[int, set[str]]:
    """Delete predictions (+arrays), logs and chains of the pipelines; release references.

    Returns (rows deleted, artifact ids whose count dropped). Set-based, in dependency
    order (DuckDB has no ON DELETE CASCADE).
    """
    chains = ChainRepository(s)
    chain_ids = chains.ids_of_pipelines(pipeline_ids)
    released: Counter[str] = chains.reference_counts(chain_ids)
    deleted = PredictionRepository(s).delete_of_pipelines(pipeline_ids, chain_ids)
    deleted += LogRepository(s).delete_of_pipelines(pipeline_ids)
    deleted += chains.delete_of_pipelines(pipeline_ids)
    ArtifactRepository(s).adjust({aid: -n for aid, n in released.items()})
    return deleted, set(released)
