"""Schema versioning: the Alembic glue used when a workspace opens.

Opening a workspace at head must stay cheap, so the fast path reads the version table
with one query and compares it with `HEAD_REVISION` (a test keeps that constant equal to
the head of `migrations/versions`); Alembic itself is imported only to migrate.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from nirs4all_store.db.engine import database_file
from nirs4all_store.errors import MigrationRequiredError, SchemaTooNewError
from nirs4all_store.models import SKIP_ON, Base

VERSION_TABLE = "nirs4all_store_version"
HEAD_REVISION = "0008"

#: The Alembic script folder: one location, the same in a checkout and in the wheel.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def migrations_dir() -> Path:
    """The Alembic script folder (`nirs4all_store/db/migrations`)."""
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise FileNotFoundError(
            f"nirs4all-store migrations not found in {MIGRATIONS_DIR}: the installation is broken"
        )
    return MIGRATIONS_DIR


def make_include_object(dialect_name: str) -> Callable[..., bool]:
    """Autogenerate filter: leave out what is deliberately not created on this dialect
    (foreign keys and secondary indexes on DuckDB) and the store's own version table."""

    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        for candidate in (obj, compare_to):
            info = getattr(candidate, "info", None) or {}
            if dialect_name in info.get(SKIP_ON, ()):
                return False
        return not (type_ == "table" and name == VERSION_TABLE)

    return include_object


def alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def current_revision(conn: Connection) -> str | None:
    """The revision stamped in the version table, None when the table does not exist."""
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    row = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).first()
    return row[0] if row else None


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrations_dir()))
    return {rev.revision for rev in script.walk_revisions()}


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory(str(migrations_dir())).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads: {heads}")
    return heads[0]


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    with engine.begin() as conn:
        ensure_pg_schema(conn)
        command.upgrade(alembic_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), revision)


def upgrade_on_connection(connection: Connection, revision: str = "head") -> None:
    """Run the store's migrations on a connection a host application hands over: inside the
    host's Alembic env.py or one of its revisions (`op.get_bind()`), in the host's
    transaction (nothing is committed here), without touching the host's Alembic context,
    its `op` proxy or its version table (the store keeps its own, `VERSION_TABLE`).

    A fresh Alembic MigrationContext of the store's own runs the store's scripts; the `op`
    proxy is bound to it only for the duration and restored afterwards.
    """
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from nirs4all_store.db.duckdb import alembic_impl  # noqa: F401  (registers DuckDB's impl)

    script = ScriptDirectory(str(migrations_dir()))

    def steps(heads: Any, _context: Any) -> Any:
        return script._upgrade_revs(revision, heads)

    ensure_pg_schema(connection)
    context = MigrationContext.configure(
        connection,
        opts={
            "version_table": VERSION_TABLE,
            "fn": steps,
            "target_metadata": Base.metadata,
            "include_object": make_include_object(connection.dialect.name),
        },
    )
    with Operations.context(context):
        context.run_migrations()


def exclude_store_tables(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """An `include_object` for a host application's autogenerate: leaves the store's
    tables, their indexes and constraints, and the store's version table out of the host's
    migrations (they belong to the store's own)."""
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table not in STORE_TABLE_NAMES


def include_host_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """An `include_name` for a host's autogenerate: skips the store's tables before they are
    even reflected (cheaper than `exclude_store_tables` on large databases)."""
    return not (type_ == "table" and name in STORE_TABLE_NAMES)


class UnversionedDatabase(Exception):
    """The database has tables but no version table of ours (a legacy or foreign schema)."""

    def __init__(self, tables: list[str]) -> None:
        super().__init__(f"unversioned database with tables {tables}")
        self.tables = tables


def user_tables(conn: Connection) -> list[str]:
    return sorted(sa.inspect(conn).get_table_names())


#: Every table the store owns (its models and its version table).
STORE_TABLE_NAMES = frozenset(Base.metadata.tables) | {VERSION_TABLE}


def store_tables_present(conn: Connection) -> list[str]:
    """The store's own table names that exist in the database (its current schema).

    Other tables (a host application's) are none of the store's business: the store lives
    beside them and refuses only a table it needs that exists without its version."""
    return sorted(set(user_tables(conn)) & set(Base.metadata.tables))


def ensure_pg_schema(conn: Connection) -> None:
    """Create the schema named first in a PostgreSQL search_path when it does not exist
    (`schema=` / `?options=-csearch_path=...`); current_schema() is NULL until then."""
    if conn.dialect.name != "postgresql":
        return
    if conn.execute(sa.text("SELECT current_schema()")).scalar() is not None:
        return
    first = str(conn.execute(sa.text("SHOW search_path")).scalar()).split(",")[0].strip()
    first = first.strip('"')
    if first and first != "$user":
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{first}"'))


def ensure_schema(
    engine: Engine,
    *,
    implicit_upgrade: bool,
    before_upgrade: Callable[[str], None] | None = None,
    describe: str = "",
) -> str:
    """Bring the database to head or explain why not; returns the revision it is at.

    A new database is migrated to head. An older one is upgraded when `implicit_upgrade`
    (embedded backends; `before_upgrade(revision)` backs the file up first), else refused
    with `MigrationRequiredError`. A revision this package does not know is refused.
    """
    with engine.connect() as conn:
        revision = current_revision(conn)
        if revision is None:
            tables = store_tables_present(conn)
            if tables:
                raise UnversionedDatabase(tables)
    if revision == HEAD_REVISION:
        return revision
    with migration_lock(engine):
        with engine.connect() as conn:  # another process may have migrated meanwhile
            revision = current_revision(conn)
        if revision == HEAD_REVISION:
            return revision
        return _migrate(engine, revision, implicit_upgrade, before_upgrade, describe)


def _migrate(
    engine: Engine,
    revision: str | None,
    implicit_upgrade: bool,
    before_upgrade: Callable[[str], None] | None,
    describe: str,
) -> str:
    if revision is not None and revision not in known_revisions():
        raise SchemaTooNewError(
            f"{describe or 'the database'} is at schema revision {revision!r}, unknown to this "
            f"nirs4all-store (head {HEAD_REVISION!r}): it was written by a newer version; "
            "upgrade the package (pip install -U nirs4all-store)"
        )
    if revision is not None and not implicit_upgrade:
        raise MigrationRequiredError(
            f"{describe or 'the database'} is at schema revision {revision!r}, older than this "
            f"package's {HEAD_REVISION!r}: run `nirs4all-store db upgrade --url ...` first"
        )
    if revision is not None and before_upgrade is not None:
        before_upgrade(revision)
    upgrade(engine)
    return HEAD_REVISION


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """One migrating process at a time: concurrent first opens of an older (or new)
    database migrate once; the others wait, then find it at head.

    File databases: an flock on `<db>.migrate.lock` beside the file (held across the
    backup, which closes the DuckDB engine and would let a second process in). PostgreSQL:
    a session advisory lock on a connection held for the duration."""
    db_file = database_file(engine.url)
    if db_file is not None:
        with _file_lock(db_file.with_name(db_file.name + ".migrate.lock")):
            yield
        return
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
            conn.commit()


#: Advisory-lock key of the store's migrations (any 64-bit constant, fixed forever).
_PG_MIGRATION_LOCK = 0x6E34_6173_746F_7265 & 0x7FFF_FFFF_FFFF_FFFF


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: one process per workspace
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
