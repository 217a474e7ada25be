"""The artifact vault: content-addressed files under `artifacts/` plus their rows.

It owns what ties a file to its row: saves write the file (atomically, fsynced) before the
row commits, under the shared artifact lock; deletions remove rows in a transaction and the
files only after it commits, under the exclusive lock, and never a file another row still
names. Reference counts are taken by chains (`save_chains`), not here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy.orm import Session

from nirs4all_store.artifacts import files
from nirs4all_store.artifacts.lock import ArtifactLock
from nirs4all_store.db.session import UnitOfWork
from nirs4all_store.repositories import ArtifactRepository
from nirs4all_store.repositories.artifacts import artifact_id_for
from nirs4all_store.types import utcnow
from nirs4all_store.validation import check_id

#: How long an artifact saved but not yet referenced by a chain is spared by deletions.
DEFAULT_GRACE_SECONDS = 3600.0
PENDING_UNLINKS = "nirs4all_pending_unlinks"  # Session.info key: files to delete on commit


class ArtifactVault:
    """Artifact files and rows of one workspace, over the store's unit of work."""

    def __init__(self, root: Path, lock_folder: Path, uow: UnitOfWork) -> None:
        self.files = files.ArtifactFiles(root)
        self.lock = ArtifactLock(lock_folder)
        self.uow = uow

    # -- saving -----------------------------------------------------------------------------
    def save_many(self, items: Sequence[Any]) -> list[str]:
        """Serialise, store and record objects; identical bytes share one id and file."""
        prepared = [artifact_item(i, item) for i, item in enumerate(items)]
        blobs = [files.serialize(obj, fmt) for obj, _, _, fmt in prepared]
        with self.lock.shared():
            stored = files.put_many(
                self.files,
                [(blob, fmt) for (_, _, _, fmt), blob in zip(prepared, blobs, strict=True)],
            )
            keys = [
                (content_hash, fmt)
                for (content_hash, _), (_, _, _, fmt) in zip(stored, prepared, strict=True)
            ]
            meta = [
                {
                    "artifact_path": relpath,
                    "operator_class": operator_class,
                    "artifact_type": artifact_type,
                    "size_bytes": len(blob),
                }
                for (_, relpath), (_, operator_class, artifact_type, _), blob in zip(
                    stored, prepared, blobs, strict=True
                )
            ]
            return self.uow.run(
                lambda s: _record(s, keys, meta), "save_artifacts", retry_integrity=True
            )

    # -- reading ----------------------------------------------------------------------------
    def get(self, artifact_id: str) -> dict[str, Any] | None:
        return self.uow.run(lambda s: ArtifactRepository(s).get(artifact_id), "get_artifact")

    def row(self, artifact_id: str) -> dict[str, Any]:
        check_id("artifact_id", artifact_id)
        row = self.get(artifact_id)
        if row is None:
            raise KeyError(f"unknown artifact_id {artifact_id!r}")
        return row

    def path(self, artifact_id: str) -> Path:
        return self.files.path(self.row(artifact_id)["artifact_path"])

    def load(self, artifact_id: str) -> Any:
        row = self.row(artifact_id)
        data = self.files.read_verified(row["artifact_path"], row["content_hash"], artifact_id)
        return files.deserialize(data, row["format"])

    def list(self) -> pa.Table:
        return self.uow.run(lambda s: ArtifactRepository(s).list(), "list_artifacts")

    # -- deleting ---------------------------------------------------------------------------
    @contextmanager
    def deleting(self) -> Iterator[None]:
        """The exclusive lock: no save may reuse a file while rows and files go."""
        with self.lock.exclusive():
            yield

    def gc(self, grace_seconds: float, dry_run: bool) -> int | list[dict[str, Any]]:
        if grace_seconds < 0:
            raise ValueError(f"grace_seconds must be >= 0, got {grace_seconds!r}")
        cutoff = utcnow() - dt.timedelta(seconds=float(grace_seconds))

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


def _record(s: Session, keys: list[tuple[str, str]], meta: list[dict[str, Any]]) -> list[str]:
    """Rows for new (hash, format) keys; known ones are marked saved again (grace period)."""
    repo = ArtifactRepository(s)
    existing = repo.find_by_hashes(keys)
    new: dict[tuple[str, str], dict[str, Any]] = {}
    for key, m in zip(keys, meta, strict=True):
        if key not in existing and key not in new:
            new[key] = {
                "artifact_id": artifact_id_for(*key),
                "content_hash": key[0],
                "format": key[1],
                **m,
            }
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
    return values  # type: ignore[return-value]
