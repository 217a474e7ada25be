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
from nirs4all_store.db.session import UnitOfWork
from nirs4all_store.errors import ReadOnlyStoreError, StoreClosedError
from nirs4all_store.repositories import (
    ArtifactRepository,
    ChainRepository,
    LogRepository,
    PredictionRepository,
)

T = TypeVar("T")


class FacadeBase:
    """State shared by the facade's call groups (set by `WorkspaceStore.__init__`)."""

    path: Path | None
    vault: ArtifactVault
    read_only: bool
    _uow: UnitOfWork
    _closed: bool

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
        """`fn` in a unit of work that may write (refused on a read-only store)."""
        self._check_writable(what)
        return self._uow.run(fn, what, **kw)

    def _read(self, what: str, fn: Callable[[Session], T]) -> T:
        """`fn` in a unit of work that only reads: no write lock on any backend."""
        self._check_open()
        return self._uow.run(fn, what, read=True)


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
