"""Opening a workspace database: engine, interrupted-adoption recovery, schema check,
backup before an implicit upgrade, adoption of a legacy DuckDB file.

Kept apart from the facade: it runs once per open and is the only place that decides
whether a database may be migrated, adopted or must be refused.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, Engine

from nirs4all_store.db import engine as engines
from nirs4all_store.db import migrate
from nirs4all_store.db.session import is_driver_error, translate
from nirs4all_store.durable import atomic_copy
from nirs4all_store.errors import UnknownSchemaError


def open_engine(
    workspace: Path | None,
    url: str | URL | Engine | None,
    *,
    lock_timeout: float,
    hold_lock: bool,
) -> Engine:
    """An engine at the schema head for `url` (None: the workspace's own store.duckdb).

    An `Engine` handed in is checked (and migrated) but never disposed here.
    """
    owns = not isinstance(url, Engine)
    if isinstance(url, Engine):
        engine = url
    else:
        if url is None:
            assert workspace is not None
            url = engines.duckdb_url(workspace / engines.DB_FILENAME)
            from nirs4all_store.legacy.adopt import recover_interrupted_adoption

            recover_interrupted_adoption(workspace)
        engine = engines.create_store_engine(url, lock_timeout=lock_timeout, hold_lock=hold_lock)
    try:
        ensure_schema(engine, workspace, may_adopt=owns)
    except BaseException:
        if owns:
            engine.dispose()
        raise
    return engine


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
                f"{described} holds tables {sorted(found.tables)} but no nirs4all-store "
                "schema version: refusing to write into it"
            ) from None
        engine.dispose()
        from nirs4all_store.legacy.adopt import adopt_legacy_workspace

        adopt_legacy_workspace(workspace or db_file.parent)
        engine.dispose()
        migrate.ensure_schema(engine, implicit_upgrade=True, describe=described)
    except Exception as exc:
        if is_driver_error(exc):
            raise translate(exc, f"opening {described}") from exc
        raise


def backup_before_upgrade(engine: Engine, revision: str) -> None:
    """Copy an embedded database file before migrating it (`store.duckdb.bak-<revision>`)."""
    db_file = engines.database_file(engine.url)
    if db_file is None or not db_file.exists():
        return
    backup = db_file.with_name(f"{db_file.name}.bak-{revision}")
    if engine.dialect.name == "sqlite":
        # The raw connection: the engine's "begin" hook would wrap VACUUM in BEGIN IMMEDIATE,
        # and VACUUM cannot run inside a transaction.
        raw = engine.raw_connection()
        try:
            raw.driver_connection.execute("VACUUM INTO ?", (str(backup),))  # type: ignore[union-attr]
        finally:
            raw.close()
        return
    engine.dispose()  # DuckDB writes its WAL into the file on close
    atomic_copy(db_file, backup)
