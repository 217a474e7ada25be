"""The artifact vault: content-addressed files under `artifacts/` plus their rows.

It owns what ties a file to its row: saves write the file (atomically, fsynced) before the
row commits, under the shared artifact lock; deletions remove rows in a transaction and the
files only after it commits, under the exclusive lock, and never a file another row still
names. Reference counts are taken by chains (`save_chains`), not here.
"""

from __future__ import annotations

import datetime as dt
import math
import pickle
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy.orm import Session

from nirs4all_store.artifacts import files
from nirs4all_store.artifacts.lock import DEFAULT_LOCK_TIMEOUT, ArtifactLock
from nirs4all_store.db.session import UnitOfWork
from nirs4all_store.repositories import ArtifactRepository
from nirs4all_store.repositories.artifacts import artifact_id_for
from nirs4all_store.repositories.direct_rows import DirectRows
from nirs4all_store.types import utcnow
from nirs4all_store.validation import check_id, check_text

#: How long an artifact saved but not yet referenced by a chain is spared by deletions.
DEFAULT_GRACE_SECONDS = 3600.0
PENDING_UNLINKS = "nirs4all_pending_unlinks"  # Session.info key: files to delete on commit
#: A serialised artifact: (bytes, format, operator_class, artifact_type, sha256).
Prepared = tuple[bytes, str, "str | None", "str | None", str]


class ArtifactVault:
    """Artifact files and rows of one workspace, over the store's unit of work."""

    def __init__(
        self,
        root: Path,
        lock_folder: Path,
        uow: UnitOfWork,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        self.files = files.ArtifactFiles(root)
        #: Set by the store on DuckDB: a single new artifact's row in one statement.
        self.direct: DirectRows | None = None
        self.lock = ArtifactLock(lock_folder, lock_timeout)
        self.uow = uow
        # An explicit transaction holds the shared lock from its start to its commit: a
        # file it reuses cannot be judged an orphan (no committed row yet) and unlinked by
        # verify/gc before the row commits (issue 15 item 1), and the lock is never taken
        # after the transaction holds rows (item 2). A read-only store writes nothing (and
        # may not be able to create the lock file).
        if not getattr(uow, "read_only", False):
            uow.transaction_guard = self.lock.shared

    @property
    def in_transaction(self) -> bool:
        """True inside `store.transaction()` (which holds the shared lock already)."""
        return self.uow.current is not None

    def _shared(self) -> AbstractContextManager[Any]:
        return nullcontext() if self.in_transaction else self.lock.shared()

    # -- saving -----------------------------------------------------------------------------
    def save_many(self, items: Sequence[Any]) -> list[str]:
        """Serialise, store and record objects; identical bytes share one id and file."""
        prepared = self.prepare(items)
        with self._shared():  # files before the transaction: no database lock held over I/O
            stored = self.put(prepared)
            if self.direct is not None and len(prepared) == 1 and not self.in_transaction:
                row = self._new_row(prepared[0], stored[0])
                if self.direct.new_artifact(row):  # new bytes (re-saves go the usual way)
                    return [row["artifact_id"]]
            return self.uow.run(
                lambda s: self.record(s, prepared, stored), "save_artifacts", retry_integrity=True
            )

    @staticmethod
    def prepare(items: Sequence[Any]) -> list[Prepared]:
        """The checked items serialised: (bytes, format, operator_class, artifact_type,
        sha256) each. What cannot be serialised fails here, before anything is written."""
        prepared = [artifact_item(i, item) for i, item in enumerate(items)]
        out = []
        for i, (obj, operator_class, artifact_type, fmt) in enumerate(prepared):
            blob = serialize_item(i, obj, fmt)
            out.append((blob, fmt, operator_class, artifact_type, files.sha256_bytes(blob)))
        return out

    def put(self, prepared: Sequence[Prepared]) -> list[tuple[str, str]]:
        """Write the files (atomic, fsynced); the caller holds the shared artifact lock."""
        return files.put_many(self.files, [(p[0], p[1], p[4]) for p in prepared])

    def record(
        self, s: Session, prepared: Sequence[Prepared], stored: Sequence[tuple[str, str]]
    ) -> list[str]:
        """The rows of files `put` wrote, in `s`'s transaction. Returns the ids in order."""
        rows = [self._new_row(p, kept) for p, kept in zip(prepared, stored, strict=True)]
        return _record(s, rows)

    @staticmethod
    def _new_row(prepared: Prepared, stored: tuple[str, str]) -> dict[str, Any]:
        blob, fmt, operator_class, artifact_type, _ = prepared
        content_hash, relpath = stored
        return {
            "artifact_id": artifact_id_for(content_hash, fmt),
            "artifact_path": relpath,
            "content_hash": content_hash,
            "operator_class": operator_class,
            "artifact_type": artifact_type,
            "format": fmt,
            "size_bytes": len(blob),
        }

    # -- reading ----------------------------------------------------------------------------
    def get(self, artifact_id: str) -> dict[str, Any] | None:
        return self.uow.run(
            lambda s: ArtifactRepository(s).get(artifact_id), "get_artifact", read=True
        )

    def row(self, artifact_id: str) -> dict[str, Any]:
        check_id("artifact_id", artifact_id)
        row = self.get(artifact_id)
        if row is None:
            raise KeyError(f"unknown artifact_id {artifact_id!r}")
        return row

    def path(self, artifact_id: str) -> Path:
        return self.files.path(self.row(artifact_id)["artifact_path"], artifact_id)

    def load(self, artifact_id: str) -> Any:
        row = self.row(artifact_id)
        data = self.files.read_verified(row["artifact_path"], row["content_hash"], artifact_id)
        return files.deserialize(data, row["format"])

    def list(self) -> pa.Table:
        return self.uow.run(lambda s: ArtifactRepository(s).list(), "list_artifacts", read=True)

    # -- deleting ---------------------------------------------------------------------------
    @contextmanager
    def deleting(self) -> Iterator[None]:
        """The exclusive lock: no save may reuse a file while rows and files go.

        Inside `store.transaction()` this thread holds the shared lock already (waiting for
        the exclusive one would wait on itself): the rows go in the transaction and the
        files after its commit, under the exclusive lock (`unlink_pending`)."""
        if self.in_transaction:
            yield
            return
        with self.lock.exclusive():
            yield

    def gc(self, grace_seconds: float, dry_run: bool) -> int | list[dict[str, Any]]:
        cutoff = utcnow() - dt.timedelta(seconds=check_grace(grace_seconds))

        def work(s: Session) -> tuple[list[dict[str, Any]], int]:
            repo = ArtifactRepository(s)
            gone = repo.unreferenced(young_cutoff=cutoff)
            if dry_run:
                return gone, 0
            return gone, repo.delete([g["artifact_id"] for g in gone], young_cutoff=cutoff)

        with self.deleting():
            gone, removed = self.uow.run(work, "gc_artifacts")
            if dry_run:
                return gone
            self.unlink_unused(gone)
        return removed

    def unlink_unused(self, gone: Sequence[Mapping[str, Any]]) -> None:
        """Delete the files of removed rows unless another row still points at the path.

        Inside `store.transaction()` the rows may still roll back: the files are deleted
        when (and only if) that transaction commits (`unlink_pending`).
        """
        if not gone:
            return
        session = self.uow.current
        if session is not None:
            session.info.setdefault(PENDING_UNLINKS, []).extend(gone)
            return
        in_use = self.uow.run(
            lambda s: ArtifactRepository(s).paths_in_use(g["artifact_path"] for g in gone),
            "gc_artifacts",
        )
        for g in gone:
            if g["artifact_path"] not in in_use:
                self.files.delete(g["artifact_path"])

    def unlink_pending(self, pending: Sequence[Mapping[str, Any]]) -> None:
        """After an outer transaction committed: the files of the rows it deleted."""
        if pending:
            with self.deleting():
                self.unlink_unused(pending)


def check_grace(grace_seconds: Any) -> float:
    """`grace_seconds` as a finite float >= 0 (NaN would silently never remove anything)."""
    if isinstance(grace_seconds, bool) or not isinstance(grace_seconds, (int, float)):
        raise TypeError(
            f"grace_seconds must be a number of seconds, got {type(grace_seconds).__name__} "
            f"{grace_seconds!r}"
        )
    value = float(grace_seconds)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"grace_seconds must be a finite number >= 0, got {grace_seconds!r}")
    return value


def _record(s: Session, rows: list[dict[str, Any]]) -> list[str]:
    """Rows (`ArtifactVault._new_row`) for new (hash, format) keys; known ones are marked
    saved again (grace period). Returns the ids in order."""
    repo = ArtifactRepository(s)
    keys = [(row["content_hash"], row["format"]) for row in rows]
    existing = repo.find_by_hashes(keys)
    new: dict[tuple[str, str], dict[str, Any]] = {}
    for key, row in zip(keys, rows, strict=True):
        if key not in existing and key not in new:
            new[key] = row
    repo.mark_saved(r["artifact_id"] for r in existing.values())
    repo.insert_many(list(new.values()))
    ids = {
        **{k: r["artifact_id"] for k, r in existing.items()},
        **{k: r["artifact_id"] for k, r in new.items()},
    }
    return [ids[key] for key in keys]


def artifact_item(index: int, item: Any) -> tuple[Any, str | None, str | None, str]:
    """(obj, operator_class, artifact_type, format) of one `save_artifacts` item."""
    if isinstance(item, Mapping):
        if "obj" not in item:
            raise ValueError(f"items[{index}] needs an 'obj' key, got keys {sorted(item)}")
        values = (
            item["obj"],
            item.get("operator_class"),
            item.get("artifact_type"),
            item.get("format", "joblib"),
        )
    elif isinstance(item, tuple) and 1 <= len(item) <= 4:
        values = (*item, *(None, None, "joblib")[len(item) - 1 :])
    else:
        raise TypeError(
            f"items[{index}] must be a (obj, operator_class, artifact_type[, format]) tuple "
            f"or a dict, got {type(item).__name__}"
        )
    files.check_format(values[3])
    for name, value in (("operator_class", values[1]), ("artifact_type", values[2])):
        if value is not None:
            check_text(f"items[{index}].{name}", value)
    return values  # type: ignore[return-value]


def serialize_item(index: int, obj: Any, fmt: str) -> bytes:
    """The bytes of one item; what pickle cannot hold is a TypeError naming the item (it
    raised PicklingError, AttributeError or RecursionError from inside pickle). An error
    the object's own code raises (its `__reduce__`) is the caller's and passes unchanged."""
    try:
        return files.serialize(obj, fmt)  # the format was checked by artifact_item
    except (pickle.PicklingError, AttributeError, TypeError, RecursionError) as exc:
        raise TypeError(
            f"items[{index}] ({type(obj).__name__}) cannot be serialised as {fmt}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
