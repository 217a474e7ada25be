"""Opening a workspace database: engine, interrupted-adoption recovery, schema check,
backup before an implicit upgrade, adoption of a legacy DuckDB file.

Kept apart from the facade: it runs once per open and is the only place that decides
whether a database may be migrated, adopted or must be refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, Engine

from nirs4all_store.artifacts.owner import check_owner, claim_folder, refuse_new_database
from nirs4all_store.db import engine as engines
from nirs4all_store.db import migrate
from nirs4all_store.db.backup import backup_before_upgrade
from nirs4all_store.db.session import is_driver_error, translate
from nirs4all_store.errors import (
    MigrationRequiredError,
    UnknownSchemaError,
    WorkspaceNotFoundError,
)


@dataclass(frozen=True)
class OpenOptions:
    """How `WorkspaceStore` opens its database (see its docstring for each)."""

    lock_timeout: float = 10.0
    hold_lock: bool | None = None
    read_only: bool = False
    schema: str | None = None
    pool: dict[str, Any] | None = None
    artifacts: Path | None = None  # the artifacts folder (default: <workspace>/artifacts)


def open_engine(
    workspace: Path | None, url: str | URL | Engine | None, *, options: OpenOptions
) -> Engine:
    """An engine at the schema head for `url` (None: the workspace's own store.duckdb).

    An `Engine` handed in is checked (and migrated) but never disposed here. A read-only
    open never creates, recovers, adopts or migrates: it refuses what is not at head.
    """
    owns = not isinstance(url, Engine)
    if isinstance(url, Engine):
        engine = url
    else:
        url = _resolve_url(workspace, url, options)
        _check_artifacts(url, workspace, options)
        pool = options.pool if options.pool is not None else engines.pool_settings_from_env()
        engine = engines.create_store_engine(
            url,
            lock_timeout=options.lock_timeout,
            hold_lock=options.hold_lock,
            read_only=options.read_only,
            pool=pool,
        )
    try:
        if options.read_only:
            check_readable(engine)
        else:
            ensure_schema(engine, workspace, may_adopt=owns)
        _claim_artifacts(engine, workspace, options)
    except BaseException:
        if owns:
            engine.dispose()
        raise
    return engine


def _artifacts(workspace: Path | None, options: OpenOptions) -> Path | None:
    if options.artifacts is not None:
        return options.artifacts
    return workspace / "artifacts" if workspace is not None else None


def _check_artifacts(url: URL, workspace: Path | None, options: OpenOptions) -> None:
    """Before a database file is created: the folder's owner, and no new database beside
    artifact files (issue 15 items 13 and 5)."""
    artifacts = _artifacts(workspace, options)
    if artifacts is not None:
        check_owner(artifacts, url)
        if not options.read_only:
            refuse_new_database(engines.database_file(url), artifacts)


def _claim_artifacts(engine: Engine, workspace: Path | None, options: OpenOptions) -> None:
    """One database per artifacts folder (issue 15 item 13: `artifacts/.owner`)."""
    artifacts = _artifacts(workspace, options)
    if artifacts is not None:
        claim_folder(artifacts, engine.url, read_only=options.read_only)


def _resolve_url(workspace: Path | None, url: str | URL | None, options: OpenOptions) -> URL:
    if url is None:
        assert workspace is not None
        db_file = workspace / engines.DB_FILENAME
        if not options.read_only:
            from nirs4all_store.legacy.adopt import recover_interrupted_adoption

            recover_interrupted_adoption(workspace)
            _adopt_nirs4all_sqlite(workspace, db_file)
        resolved = engines.duckdb_url(db_file)
    else:
        resolved = engines.normalise_url(url)
    if options.schema is not None:
        resolved = engines.with_schema(resolved, options.schema)
    db_file = engines.database_file(resolved)
    if options.read_only and db_file is not None and not db_file.is_file():
        raise WorkspaceNotFoundError(
            f"no store database at {db_file}: a read-only store never creates one "
            f"({_read_only_hint(workspace, url)})"
        )
    return resolved


def _read_only_hint(workspace: Path | None, url: str | URL | None) -> str:
    """What to do about a missing database: a folder of nirs4all 0.8's own store is adopted
    by a read-write open (never by a read-only one, which writes nothing)."""
    from nirs4all_store.legacy.nirs4all08 import SQLITE_FILENAME

    if url is None and workspace is not None and (workspace / SQLITE_FILENAME).is_file():
        return (
            f"the folder holds nirs4all 0.8's {SQLITE_FILENAME}: open it once read-write "
            "to adopt it"
        )
    return "open it read-write once, or check the path"


def _adopt_nirs4all_sqlite(workspace: Path, db_file: Path) -> None:
    """A workspace of nirs4all 0.8's own store (store.sqlite, no store.duckdb) is adopted
    before the engine would create an empty store.duckdb beside its artifacts."""
    from nirs4all_store.legacy.nirs4all08 import SQLITE_FILENAME

    if not db_file.exists() and (workspace / SQLITE_FILENAME).is_file():
        from nirs4all_store.legacy.adopt import adopt_legacy_workspace

        adopt_legacy_workspace(workspace)


def check_readable(engine: Engine) -> None:
    """A read-only handle reads a database at this package's head revision only."""
    described = _described(engine)
    try:
        with engine.connect() as conn:
            revision = migrate.current_revision(conn)
    except Exception as exc:
        if is_driver_error(exc):
            raise translate(exc, f"opening {described} read-only") from exc
        raise
    if revision != migrate.HEAD_REVISION:
        raise MigrationRequiredError(
            f"{described} is at schema revision {revision!r}, not this package's "
            f"{migrate.HEAD_REVISION!r}: a read-only store does not migrate; open it read-write "
            "once (or run `nirs4all-store db upgrade`)"
        )


def _described(engine: Engine) -> str:
    db_file = engines.database_file(engine.url)
    return str(db_file or engine.url.render_as_string(hide_password=True))


def ensure_schema(engine: Engine, workspace: Path | None, *, may_adopt: bool) -> None:
    """Migrate, adopt or refuse, as `migrate.ensure_schema` and the database's tables say."""
    db_file = engines.database_file(engine.url)
    described = str(db_file or engine.url.render_as_string(hide_password=True))
    try:
        migrate.ensure_schema(
            engine,
            implicit_upgrade=not engines.is_server(engine.url),
            before_upgrade=lambda revision: backup_before_upgrade(engine, revision),
            describe=described,
        )
    except migrate.UnversionedDatabase as found:
        if engine.dialect.name != "duckdb" or db_file is None or not may_adopt:
            raise UnknownSchemaError(
                f"{described} holds table(s) {sorted(found.tables)} that nirs4all-store needs, "
                "but no nirs4all-store schema version: refusing to write into them (rename or "
                "drop them, or give the store its own schema: schema=... on PostgreSQL)"
            ) from None
        engine.dispose()
        from nirs4all_store.legacy.adopt import adopt_legacy_workspace

        adopt_legacy_workspace(workspace or db_file.parent)
        engine.dispose()
        migrate.ensure_schema(engine, implicit_upgrade=True, describe=described)
    except RuntimeError as exc:  # a migration refusing to upgrade this database
        raise MigrationRequiredError(f"{described}: {exc}") from exc
    except Exception as exc:
        if is_driver_error(exc):
            raise translate(exc, f"opening {described}") from exc
        raise
