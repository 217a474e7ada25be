"""Which database an artifacts folder belongs to, and when a database may be created.

Files are shared by content hash and deleted when the rows of *one* database stop naming
them: two databases over one `artifacts_dir=` delete each other's files (issue 15 item 13).
The first store to open a folder records its database in `artifacts/_owner`; another
database is refused. And a database created from nothing beside a folder that holds files
would see every file as an orphan (item 5: a deleted store.duckdb, then repair removed all
22 files): `refuse_new_database` stops that before the database file is created.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.engine import URL

from nirs4all_store.artifacts.files import ArtifactFiles
from nirs4all_store.db.engine import database_file
from nirs4all_store.durable import atomic_write
from nirs4all_store.errors import StoreError

#: No dot in the name: nirs4all's own tests take every `artifacts/**/*.*` for an artifact
#: file that must sit in a 2-character shard folder (`.owner` failed them on every backend).
OWNER_FILENAME = "_owner"
#: The record's old name, in earlier workspaces (read; a writable store renames it).
LEGACY_OWNER_FILENAME = ".owner"


def database_identity(url: URL, artifacts: Path) -> str:
    """A stable name of the database: a file relative to the workspace when it lies in it
    (the workspace folder can move), else its absolute path; for a server host, port,
    database and the options that select a schema (never the user or password)."""
    db_file = database_file(url)
    if db_file is not None:
        resolved = db_file.expanduser().resolve()
        try:
            return f"file:./{resolved.relative_to(artifacts.parent).as_posix()}"
        except ValueError:
            return f"file:{resolved.as_posix()}"
    options = sorted(f"{k}={v}" for k, v in url.query.items() if "schema" in k or k in ("options",))
    where = f"{url.get_backend_name()}://{url.host or ''}:{url.port or ''}/{url.database or ''}"
    return where + (f"?{'&'.join(options)}" if options else "")


def check_owner(artifacts: Path, url: URL) -> str | None:
    """The recorded owner (None: none yet); refuses when it is not this database."""
    identity = database_identity(url, artifacts)
    record = artifacts / OWNER_FILENAME
    if not record.exists() and (artifacts / LEGACY_OWNER_FILENAME).exists():
        record = artifacts / LEGACY_OWNER_FILENAME
    try:
        owner = json.loads(record.read_text(encoding="utf-8")).get("database")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError):
        return None  # unreadable record: claimed again (atomically) by claim_folder
    if owner != identity:
        raise StoreError(
            f"the artifacts folder {artifacts} belongs to the database {owner} (recorded in "
            f"{record}), not to this store's database {identity}: two databases sharing one "
            "artifacts folder delete each other's files. Give this store its own "
            "artifacts_dir=..., or, if that database was moved here, delete "
            f"{record} once"
        )
    return str(owner)


def claim_folder(artifacts: Path, url: URL, *, read_only: bool = False) -> None:
    """Record this database as the folder's owner, or refuse when another one owns it."""
    owner = check_owner(artifacts, url)
    if read_only or not artifacts.is_dir():
        return
    legacy = artifacts / LEGACY_OWNER_FILENAME
    if owner is None or legacy.exists():  # none yet, or the old name: (re)written as _owner
        identity = database_identity(url, artifacts)
        atomic_write(artifacts / OWNER_FILENAME, json.dumps({"database": identity}).encode("utf-8"))
        if legacy.exists():
            legacy.unlink()  # this store's own marker, now under its new name


def refuse_new_database(db_file: Path | None, artifacts: Path) -> None:
    """Refuse to create a database file (missing or 0 bytes) beside artifact files."""
    if db_file is None:
        return
    try:
        size: int | None = db_file.stat().st_size
    except FileNotFoundError:
        size = None
    if size:
        return
    first = next(ArtifactFiles(artifacts).iter_files(), None)
    if first is None:
        return
    state = "does not exist" if size is None else "is empty (0 bytes)"
    raise StoreError(
        f"the database {db_file} {state} but {artifacts} holds artifact files (e.g. "
        f"{first}): refusing to create a new database over them (every file would look "
        "unused). Restore the database (a backup such as "
        f"{db_file.name}.bak-*), or move {artifacts} away to start a new workspace"
    )
