"""Workspace maintenance: `verify` (mark and check) and `vacuum` (reclaim space).

verify recomputes every reference count from the chains, checks each artifact row's file
and hash, and lists files no row claims (orphans: e.g. a crash between the atomic file write
and the commit). vacuum on DuckDB copies the database into a fresh file and swaps it in
with `os.replace` (VACUUM/CHECKPOINT do not shrink a DuckDB file: STACK_FACTS); the old
file stays in place until the new one is complete.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nirs4all_store.artifacts.files import sha256_file
from nirs4all_store.durable import fsync_file, replace
from nirs4all_store.repositories import ArtifactRepository, ChainRepository

if TYPE_CHECKING:
    from nirs4all_store.store import WorkspaceStore


@dataclass
class VerifyReport:
    """What `WorkspaceStore.verify` found (and, with repair, fixed)."""

    ref_count_mismatches: list[tuple[str, int, int]] = field(default_factory=list)
    """(artifact_id, stored ref_count, references recomputed from chains)"""
    missing_files: list[tuple[str, str]] = field(default_factory=list)
    """(artifact_id, absolute path) of rows whose file is gone"""
    orphan_files: list[str] = field(default_factory=list)
    """files under artifacts/ that no row claims (relative paths)"""
    corrupted_files: list[tuple[str, str]] = field(default_factory=list)
    """(artifact_id, absolute path) whose bytes no longer match the recorded SHA-256"""
    unknown_artifact_refs: list[tuple[str, str]] = field(default_factory=list)
    """(chain_id, artifact_id) where a chain names an artifact that has no row"""
    repaired_ref_counts: int = 0
    removed_orphans: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong (orphans removed by repair do not count)."""
        return not (
            self.ref_count_mismatches
            or self.missing_files
            or self.corrupted_files
            or self.unknown_artifact_refs
            or set(self.orphan_files) - set(self.removed_orphans)
        )

    def problems(self) -> dict[str, Any]:
        return {
            "ref_count_mismatches": self.ref_count_mismatches,
            "missing_files": self.missing_files,
            "orphan_files": [o for o in self.orphan_files if o not in self.removed_orphans],
            "corrupted_files": self.corrupted_files,
            "unknown_artifact_refs": self.unknown_artifact_refs,
        }


def verify_workspace(store: WorkspaceStore, *, repair: bool, grace_seconds: float) -> VerifyReport:
    report = VerifyReport()

    def collect(session: Any) -> tuple[list[dict[str, Any]], list[tuple[str, set[str]]]]:
        rows = ArtifactRepository(session).all_rows()
        return rows, list(ChainRepository(session).all_references())

    with store._artifact_lock.exclusive():
        rows, chain_refs = store._run("verify", collect)
        known = {r["artifact_id"] for r in rows}
        expected: dict[str, int] = dict.fromkeys(known, 0)
        for chain_id, refs in chain_refs:
            for artifact_id in sorted(refs):
                if artifact_id in known:
                    expected[artifact_id] += 1
                else:
                    report.unknown_artifact_refs.append((chain_id, artifact_id))
        claimed: set[str] = set()
        for row in rows:
            stored, want = int(row["ref_count"]), expected[row["artifact_id"]]
            if stored != want:
                report.ref_count_mismatches.append((row["artifact_id"], stored, want))
            relpath = row["artifact_path"]
            claimed.add(relpath)
            path = store._files.path(relpath)
            if not path.is_file():
                report.missing_files.append((row["artifact_id"], str(path)))
            elif sha256_file(path) != row["content_hash"]:
                report.corrupted_files.append((row["artifact_id"], str(path)))
        report.orphan_files = [f for f in store._files.iter_files() if f not in claimed]

        if repair:
            if report.ref_count_mismatches:
                report.repaired_ref_counts = store._run(
                    "verify(repair)",
                    lambda s: ArtifactRepository(s).repair_counts(report.ref_count_mismatches),
                )
            for relpath in report.orphan_files:
                with contextlib.suppress(FileNotFoundError):
                    if store._files.age_seconds(relpath) >= grace_seconds:
                        store._files.delete(relpath)
                        report.removed_orphans.append(relpath)
            store._files.remove_stale_temporaries(grace_seconds)
    return report


def vacuum_database(store: WorkspaceStore) -> dict[str, Any]:
    """Reclaim free space; returns sizes before/after (bytes) for embedded databases."""
    dialect = store.engine.dialect.name
    db_file = store.db_file
    started = time.perf_counter()
    if dialect == "duckdb" and db_file is not None:
        if not store._owns_engine:
            raise RuntimeError(
                "vacuum of a DuckDB engine handed in by the caller: dispose it and reopen by path"
            )
        store.engine.dispose()  # closing the last connection checkpoints the WAL
        before = _file_size(db_file)
        compact_duckdb_file(db_file)
    elif dialect == "sqlite":
        before = _file_size(db_file)
        # VACUUM cannot run inside a transaction, and the engine's "begin" event emits
        # BEGIN IMMEDIATE: use the DBAPI connection (isolation_level=None: no implicit BEGIN).
        raw = store.engine.raw_connection()
        try:
            raw.driver_connection.execute("VACUUM")  # type: ignore[union-attr]
            raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
        finally:
            raw.close()
    elif dialect == "postgresql":
        before = None
        with store.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("VACUUM (ANALYZE)")
    else:
        raise NotImplementedError(f"vacuum is not implemented for {dialect!r} databases")
    after = _file_size(db_file) if dialect != "postgresql" else None
    return {"before_bytes": before, "after_bytes": after, "seconds": time.perf_counter() - started}


def _file_size(db_file: Path | None) -> int | None:
    """Bytes of an embedded database including its write-ahead log (what the disk holds)."""
    if db_file is None or not db_file.exists():
        return None
    total = db_file.stat().st_size
    for suffix in (".wal", "-wal"):
        wal = db_file.with_name(db_file.name + suffix)
        if wal.exists():
            total += wal.stat().st_size
    return total


def compact_duckdb_file(db_file: Path) -> None:
    """Copy every table/view of `db_file` into a fresh file and swap it in atomically.

    The caller must have closed every connection to the file (in this process too: DuckDB
    shares one instance per file, which would keep writing to the replaced file). The old
    file is opened read-write and checkpointed first: a WAL left by a crash is merged into
    it, so no stale `.wal` can sit beside the new file (DuckDB refuses to open a file whose
    WAL does not match). The open connection also holds DuckDB's file lock until the swap
    is done, so no other process writes to the old file meanwhile. A crash before
    `os.replace` leaves the old file untouched (and a `.vacuum` file the next vacuum
    overwrites); after it, the new complete file.
    """
    import duckdb

    tmp = db_file.with_name(db_file.name + ".vacuum")
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    wal = db_file.with_name(db_file.name + ".wal")
    try:
        con = duckdb.connect(str(db_file))
    except duckdb.Error as exc:
        from nirs4all_store.errors import WorkspaceLockedError

        raise WorkspaceLockedError(
            f"cannot vacuum {db_file}: it is open elsewhere ({str(exc).splitlines()[0]}). "
            "Close every other WorkspaceStore on it, in this process and in others, first.",
            path=str(db_file),
        ) from None
    try:
        con.execute("CHECKPOINT")
        old_catalog = con.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        con.execute(f"ATTACH '{_sql_path(tmp)}' AS n4a_vacuum")
        con.execute(f'COPY FROM DATABASE "{old_catalog}" TO n4a_vacuum')
        con.execute("DETACH n4a_vacuum")  # checkpoints and closes the new file
        if wal.exists() and wal.stat().st_size > 0:
            raise RuntimeError(f"{wal} still holds changes after CHECKPOINT: vacuum aborted")
        fsync_file(tmp)
        replace(tmp, db_file)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    finally:
        con.close()


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
