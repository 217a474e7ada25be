"""Data access for artifact rows and their reference counts (files: `..artifacts`)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from nirs4all_store.models import Artifact
from nirs4all_store.repositories.affected import rows_affected
from nirs4all_store.repositories.base import forget_known, insert_rows, rows_to_arrow
from nirs4all_store.types import utcnow

T = Artifact.__table__

_ID_NAMESPACE = uuid.UUID("6f1c1d52-3d4e-4b8a-9a51-4e1f0c2b7a10")


def artifact_id_for(content_hash: str, fmt: str) -> str:
    """Deterministic UUID of some bytes: two processes saving them agree on one id/row."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{content_hash}:{fmt}"))


def collectable(young_cutoff: dt.datetime | None) -> sa.ColumnElement[bool]:
    """No live reference, and not saved after `young_cutoff` without a reference since."""
    condition = T.c.ref_count <= 0
    if young_cutoff is None:
        return condition
    saved = sa.func.coalesce(T.c.saved_at, T.c.created_at)
    return sa.and_(condition, sa.or_(T.c.referenced_at.is_not(None), saved < young_cutoff))


def foreign_ids_query() -> sa.Select[Any]:
    """One artifact id that is not a UUID5 of this library's (a UUID5 has '5' as its 15th
    character), if there is any."""
    foreign = sa.or_(
        sa.func.length(T.c.artifact_id) != 36, sa.func.substr(T.c.artifact_id, 15, 1) != "5"
    )
    return sa.select(T.c.artifact_id).where(foreign).limit(1)


class ArtifactRepository:
    """Artifact rows: where the bytes are, their hash, and how many chains use them."""

    table = T

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, artifact_id: str) -> dict[str, Any] | None:
        row = self.session.execute(sa.select(T).where(T.c.artifact_id == artifact_id)).first()
        return dict(row._mapping) if row else None

    def find_by_hashes(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """The oldest row for each (content_hash, format), in one query per 5,000 hashes."""
        wanted = set(keys)
        hashes = sorted({h for h, _ in wanted})
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for start in range(0, len(hashes), 5000):
            query = (
                sa.select(T)
                .where(T.c.content_hash.in_(hashes[start : start + 5000]))
                .order_by(T.c.created_at, T.c.artifact_id)
            )
            for row in self.session.execute(query).all():
                key = (row.content_hash, row.format)
                if key in wanted and key not in found:
                    found[key] = dict(row._mapping)
        return found

    def has_foreign_ids(self) -> bool:
        """Whether some row's id is not the UUID5 this library derives from the bytes (rows
        adopted from a legacy workspace or registered by nirs4all): then an id for given
        bytes must be looked up."""
        return self.session.execute(foreign_ids_query()).first() is not None

    def insert_many(self, rows: list[dict[str, Any]]) -> None:
        """Insert new rows (keys: artifact_id, artifact_path, content_hash, operator_class,
        artifact_type, format, size_bytes) unreferenced."""
        if not rows:
            return
        now = utcnow()
        insert_rows(
            self.session,
            T,
            [
                {**row, "ref_count": 0, "created_at": now, "saved_at": now, "referenced_at": None}
                for row in rows
            ],
        )

    def mark_saved(self, artifact_ids: Iterable[str]) -> None:
        """Deduplicated re-saves: in flight again until a chain references them.

        Whatever their count, so that a concurrent delete_run releasing the last reference
        does not remove bytes another process has just saved and is about to reference."""
        ids = list(artifact_ids)
        if ids:
            self.session.execute(
                sa.update(T)
                .where(T.c.artifact_id.in_(ids))
                .values(referenced_at=None, saved_at=utcnow())
            )

    def missing(self, artifact_ids: Iterable[str]) -> list[str]:
        from nirs4all_store.repositories.base import missing_ids

        return missing_ids(self.session, T.c.artifact_id, artifact_ids)

    def adjust(self, deltas: Mapping[str, int]) -> int:
        """Add `delta` to each artifact's ref_count: one UPDATE per distinct delta.

        Returns how many rows were updated (callers compare it with what they expected)."""
        by_delta: dict[int, list[str]] = defaultdict(list)
        for artifact_id, delta in deltas.items():
            if delta:
                by_delta[delta].append(artifact_id)
        now = utcnow()
        updated = 0
        for delta, ids in by_delta.items():
            values: dict[str, Any] = {"ref_count": T.c.ref_count + delta}
            if delta > 0:
                values["referenced_at"] = sa.func.coalesce(T.c.referenced_at, now)
            for start in range(0, len(ids), 5000):
                chunk = ids[start : start + 5000]
                updated += rows_affected(
                    self.session, sa.update(T).where(T.c.artifact_id.in_(chunk)).values(**values)
                )
        return updated

    def repair_counts(self, mismatches: Iterable[tuple[str, int, int]]) -> int:
        """Set each (artifact_id, seen, wanted) count to `wanted` if it still equals `seen`.

        Compare-and-set: verify computes `wanted` from a snapshot, and a chain saved or
        deleted since (save_chain takes no artifact lock) changes the stored count, so the
        stale repair of that artifact is skipped rather than undoing the change. Returns how
        many rows were repaired.
        """
        now = utcnow()
        repaired = 0
        for artifact_id, seen, wanted in mismatches:
            values: dict[str, Any] = {"ref_count": wanted}
            if wanted > 0:
                values["referenced_at"] = sa.func.coalesce(T.c.referenced_at, now)
            repaired += rows_affected(
                self.session,
                sa.update(T)
                .where(T.c.artifact_id == artifact_id, T.c.ref_count == seen)
                .values(**values),
            )
        return repaired

    def unreferenced(
        self, ids: Iterable[str] | None = None, *, young_cutoff: dt.datetime | None = None
    ) -> list[dict[str, Any]]:
        """Rows that may go: ref_count <= 0, except those saved after `young_cutoff` that no
        chain referenced since (in flight)."""
        query = sa.select(T.c.artifact_id, T.c.artifact_path, T.c.content_hash).where(
            collectable(young_cutoff)
        )
        if ids is not None:
            query = query.where(T.c.artifact_id.in_(list(ids)))
        return [
            dict(r._mapping) for r in self.session.execute(query.order_by(T.c.artifact_id)).all()
        ]

    def delete(
        self, artifact_ids: Iterable[str], *, young_cutoff: dt.datetime | None = None
    ) -> int:
        """Delete the rows among `artifact_ids` that are still collectable (the condition is
        re-checked by the DELETE itself: a concurrent save_chain may have referenced one)."""
        forget_known(self.session)
        ids = list(artifact_ids)
        deleted = 0
        for start in range(0, len(ids), 5000):
            chunk = ids[start : start + 5000]
            statement = sa.delete(T).where(T.c.artifact_id.in_(chunk), collectable(young_cutoff))
            deleted += rows_affected(self.session, statement)
        return deleted

    def paths_in_use(self, paths: Iterable[str]) -> set[str]:
        wanted = list(set(paths))
        if not wanted:
            return set()
        query = sa.select(T.c.artifact_path).where(T.c.artifact_path.in_(wanted))
        return set(self.session.execute(query).scalars())

    def all_rows(self) -> list[dict[str, Any]]:
        query = sa.select(T.c.artifact_id, T.c.artifact_path, T.c.content_hash, T.c.ref_count)
        return [
            dict(r._mapping) for r in self.session.execute(query.order_by(T.c.artifact_id)).all()
        ]

    def list(self) -> pa.Table:
        query = sa.select(T).order_by(T.c.created_at, T.c.artifact_id)
        return rows_to_arrow(list(T.columns), self.session.execute(query).all())
