"""Alembic environment of nirs4all-store.

Used two ways: `alembic upgrade head` from the repository root (URL from `-x url=...`, else
NIRS4ALL_STORE_URL, else ./workspace/store.duckdb), and programmatically by
`nirs4all_store.db.migrate`, which passes an open connection in
`config.attributes["connection"]`.
"""

from __future__ import annotations

from pathlib import Path

from alembic import context
from sqlalchemy.engine import Connection

from nirs4all_store.db.duckdb import alembic_impl  # noqa: F401  (registers the DuckDB impl)
from nirs4all_store.db.engine import create_store_engine, duckdb_url, url_from_env
from nirs4all_store.db.migrate import VERSION_TABLE, make_include_object
from nirs4all_store.models import Base

config = context.config


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_object=make_include_object(connection.dialect.name),
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _url_from_command_line() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or url_from_env()
    if url:
        return url
    default = Path("workspace") / "store.duckdb"
    default.parent.mkdir(parents=True, exist_ok=True)
    return str(duckdb_url(default.resolve()))


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    engine = create_store_engine(_url_from_command_line())
    try:
        with engine.connect() as conn:
            _configure_and_run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run them against a database")
run_migrations_online()
