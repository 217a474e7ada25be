"""`vacuum`: reclaim a database's free space.

On DuckDB it copies the database into a fresh file and swaps it in with `os.replace`
(VACUUM/CHECKPOINT do not shrink a DuckDB file: STACK_FACTS); the old file stays in place
until the new one is complete. SQLite runs VACUUM, PostgreSQL VACUUM (ANALYZE).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from nirs4all_store.db.engine import database_file
from nirs4all_store.durable import fsync_file, replace
from nirs4all_store.errors import WorkspaceLockedError


def vacuum_database(engine: Engine, *, owns_engine: bool) -> dict[str, Any]:
    """Reclaim free space; returns sizes before/after (bytes) for embedded databases."""
    dialect = engine.dialect.name
    db_file = database_file(engine.url)
    started = time.perf_counter()
    if dialect == "duckdb" and db_file is not None:
        if not owns_engine:
            raise RuntimeError(
                "vacuum of a DuckDB engine handed in by the caller: dispose it and reopen by path"
            )
        engine.dispose()  # closing the last connection checkpoints the WAL
        before = _file_size(db_file)
        compact_duckdb_file(db_file)
    elif dialect == "sqlite":
        before = _file_size(db_file)
        # VACUUM cannot run inside a transaction, and the engine's "begin" event emits
        # BEGIN IMMEDIATE: use the DBAPI connection (isolation_level=None: no implicit BEGIN).
        raw = engine.raw_connection()
        try:
            raw.driver_connection.execute("VACUUM")  # type: ignore[union-attr]
            raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
        finally:
            raw.close()
    elif dialect == "postgresql":
        before = None
        with engine.connect() as conn:
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
        raise WorkspaceLockedError(
            f"cannot vacuum {db_file}: it is open elsewhere ({str(exc).splitlines()[0]}). "
            "Close every other WorkspaceStore on it, in this process and in others, first.",
            path=str(db_file),
        ) from exc
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
