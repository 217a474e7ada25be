"""The files of an adoption, switched atomically, and the recovery of interrupted ones.

Crash safety. Files, next to ``store.duckdb``: ``.adopting`` (being built, maybe
incomplete), ``.adopted`` (complete: renamed only after commit, checkpoint and fsync),
``.legacy-bak`` (the original: a hard link, else a copy made via ``.legacy-bak.tmp``).
Sequence: build ``.adopting`` -> rename to ``.adopted`` -> back the original up ->
``os.replace(.adopted, store.duckdb)``. ``store.duckdb`` is therefore always either the
untouched legacy file or the complete new one, and `recover_interrupted_adoption` (run before
every open) deletes an ``.adopting`` leftover (roll back) or finishes an ``.adopted`` one
(roll forward). Artifact files are not touched: the layout is the same.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from nirs4all_store.db.engine import DB_FILENAME
from nirs4all_store.durable import fsync_dir, fsync_file
from nirs4all_store.errors import AdoptionError
from nirs4all_store.legacy.header import attach

__all__ = [
    "ADOPTED_SUFFIX",
    "ADOPTING_SUFFIX",
    "BACKUP_SUFFIX",
    "AdoptionPaths",
    "fold_legacy_wal",
    "make_backup",
    "recover_interrupted_adoption",
    "switch_in",
    "unlink",
    "wal",
]

ADOPTING_SUFFIX = ".adopting"
ADOPTED_SUFFIX = ".adopted"
BACKUP_SUFFIX = ".legacy-bak"


@dataclass(frozen=True)
class AdoptionPaths:
    """``store.duckdb`` of a workspace and the files an adoption puts next to it."""

    db: Path

    def _with(self, suffix: str) -> Path:
        return self.db.with_name(self.db.name + suffix)

    @property
    def adopting(self) -> Path:
        return self._with(ADOPTING_SUFFIX)

    @property
    def adopted(self) -> Path:
        return self._with(ADOPTED_SUFFIX)

    @property
    def backup(self) -> Path:
        return self._with(BACKUP_SUFFIX)

    @property
    def backup_tmp(self) -> Path:
        return self._with(BACKUP_SUFFIX + ".tmp")


def wal(path: Path) -> Path:
    """The write-ahead log DuckDB keeps next to the database file `path`."""
    return path.with_name(path.name + ".wal")


def unlink(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def make_backup(paths: AdoptionPaths) -> None:
    """Keep the original as ``.legacy-bak``: a hard link (instant), else a fsynced copy."""
    try:
        os.link(paths.db, paths.backup)
    except FileExistsError:
        raise
    except OSError:
        shutil.copyfile(paths.db, paths.backup_tmp)
        fsync_file(paths.backup_tmp)
        os.replace(paths.backup_tmp, paths.backup)
    fsync_dir(paths.db.parent)


def recover_interrupted_adoption(workspace_path: str | Path) -> None:
    """Finish or roll back an adoption a crash interrupted; ~free when there is none.

    ``.adopting`` is incomplete by construction: deleted (``store.duckdb`` is still the
    legacy file). ``.adopted`` is complete: the original is backed up if that was not done
    yet and the new file is switched in; except when ``store.duckdb`` has a WAL, which then
    belongs to the legacy file (switching would lose it): the adopted copy is dropped and the
    workspace simply gets adopted again.
    """
    paths = AdoptionPaths(Path(workspace_path) / DB_FILENAME)
    if paths.adopting.exists():
        unlink(paths.adopting, wal(paths.adopting))
    if paths.backup_tmp.exists():
        unlink(paths.backup_tmp)
    if not paths.adopted.exists():
        return
    if paths.db.exists():
        if wal(paths.adopted).exists() or wal(paths.db).exists():
            unlink(paths.adopted, wal(paths.adopted))  # cannot roll forward safely
            return
        if not paths.backup.exists():
            make_backup(paths)
    os.replace(paths.adopted, paths.db)
    fsync_dir(paths.db.parent)


def fold_legacy_wal(con: duckdb.DuckDBPyConnection, paths: AdoptionPaths) -> None:
    """A legacy WAL would be separated from its file by the backup: fold it in first.

    Opening read-write and checkpointing only applies the file's own committed work (what
    any open by the legacy store did), so the legacy data are unchanged.
    """
    if not wal(paths.db).exists():
        return
    attach(con, paths.db, "old_rw", read_only=False)
    con.execute("CHECKPOINT old_rw")
    con.execute("DETACH old_rw")
    if wal(paths.db).exists():
        raise AdoptionError(
            f"{wal(paths.db)} could not be folded into {paths.db}; the legacy workspace is "
            "untouched: open it once with the legacy nirs4all store, then adopt again"
        )


def switch_in(
    con: duckdb.DuckDBPyConnection,
    paths: AdoptionPaths,
    step: Callable[[str], None],
    *,
    backup: bool = True,
) -> None:
    """Switch the complete ``.adopting`` database in: ``.adopted``, backup, ``store.duckdb``.

    `con` has the legacy file attached as ``old`` (detached before the switch); `step` is
    called at each step boundary.
    """
    workspace = paths.db.parent
    try:
        os.replace(paths.adopting, paths.adopted)
        fsync_dir(workspace)
        step("adopted")
        if backup:  # False: no store.duckdb yet (adopted from nirs4all 0.8's store.sqlite)
            make_backup(paths)
            step("backed_up")
        con.execute("DETACH old")
        os.replace(paths.adopted, paths.db)
        fsync_dir(workspace)
        step("switched")
    except Exception as exc:
        if paths.adopted.exists():
            raise AdoptionError(
                f"switching {paths.db} to the adopted database failed: {exc}. {paths.db} "
                f"is still the untouched legacy file; the complete adopted database is "
                f"{paths.adopted} and is switched in by recover_interrupted_adoption() at "
                "the next open."
            ) from exc
        raise AdoptionError(
            f"the adoption of {paths.db} is complete ({paths.db} is the adopted database, "
            f"{paths.backup} the original) but a final step failed: {exc}"
        ) from exc
