"""Schema versioning: the Alembic glue used when a workspace opens.

Opening a workspace at head must stay cheap, so the fast path reads the version table
with one query and compares it with `HEAD_REVISION` (a test keeps that constant equal to
the head of `migrations/versions`); Alembic itself is imported only to migrate.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from nirs4all_store.errors import MigrationRequiredError, SchemaTooNewError
from nirs4all_store.models import SKIP_ON

VERSION_TABLE = "nirs4all_store_version"
HEAD_REVISION = "0006"

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
        command.upgrade(alembic_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), revision)


class UnversionedDatabase(Exception):
    """The database has tables but no version table of ours (a legacy or foreign schema)."""

    def __init__(self, tables: list[str]) -> None:
        super().__init__(f"unversioned database with tables {tables}")
        self.tables = tables


def user_tables(conn: Connection) -> list[str]:
    return sorted(sa.inspect(conn).get_table_names())


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
            tables = user_tables(conn)
            if tables:
                raise UnversionedDatabase(tables)
    if revision == HEAD_REVISION:
        return revision
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
