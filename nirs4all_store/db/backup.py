"""The backup of an embedded database file taken before an implicit upgrade.

`<db>.bak-<revision>` holds the file as it was at `<revision>`, whole or not at all: it is
written under a temporary name in the same folder, fsynced, then renamed (`os.replace`),
so a kill mid-copy never leaves a partial backup under the final name (SQLite's `VACUUM
INTO` once left 9.7 of 11.6 MB there) and a backup left by an earlier, refused or killed
upgrade never blocks the next one (SQLite refused with "output file already exists").
The database is still at that revision, so the new backup replaces the old one.
Temporaries of killed backups are removed by the next backup: it runs under the migration
lock (`migrate.migration_lock`), so no other backup of the same file is in flight.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from pathlib import Path

from sqlalchemy.engine import Engine

from nirs4all_store.db.engine import database_file
from nirs4all_store.durable import TEMP_PREFIX, fsync_dir, fsync_file

#: Temporaries named in the older way (`.tmp-<16 hex>.bak-<rev>`, no database name) are
#: removed when older than this: they may belong to another database file of the folder.
UNNAMED_TEMP_GRACE_SECONDS = 600.0


def backup_path(db_file: Path, revision: str) -> Path:
    return db_file.with_name(f"{db_file.name}.bak-{revision}")


def backup_before_upgrade(engine: Engine, revision: str) -> Path | None:
    """Copy an embedded database file before migrating it; returns the backup's path."""
    db_file = database_file(engine.url)
    if db_file is None or not db_file.exists():
        return None
    remove_stale_temporaries(db_file)
    backup = backup_path(db_file, revision)
    tmp = db_file.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}.{backup.name}")
    try:
        if engine.dialect.name == "sqlite":
            _vacuum_into(engine, tmp)
        else:
            engine.dispose()  # DuckDB writes its WAL into the file on close
            shutil.copyfile(db_file, tmp)
        fsync_file(tmp)
        os.replace(tmp, backup)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(backup.parent)
    return backup


def _vacuum_into(engine: Engine, target: Path) -> None:
    # The raw connection: the engine's "begin" hook would wrap VACUUM in BEGIN IMMEDIATE,
    # and VACUUM cannot run inside a transaction.
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("VACUUM INTO ?", (str(target),))  # type: ignore[union-attr]
    finally:
        raw.close()


def remove_stale_temporaries(db_file: Path) -> list[Path]:
    """Delete the temporaries of backups of `db_file` that a kill left behind."""
    removed = []
    folder = db_file.parent
    named = folder.glob(f"{TEMP_PREFIX}*.{db_file.name}.bak-*")
    unnamed = (
        p
        for p in folder.glob(f"{TEMP_PREFIX}*.bak-*")
        if len(p.name.split(".")) == 3 and _age(p) >= UNNAMED_TEMP_GRACE_SECONDS
    )
    for path in [*named, *unnamed]:
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed.append(path)
    return removed


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0
