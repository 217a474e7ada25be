"""Engine creation: URL resolution and the per-backend settings measured in STACK_FACTS.

- DuckDB: one read-write process per file, and while a process holds any connection no
  other process can open the file, not even read-only (STACK_FACTS). Opening a locked file
  is retried until `lock_timeout` and then raises `WorkspaceLockedError` naming the holder's
  PID. By default (`hold_lock=None`) an engine closes its idle connections
  `IDLE_RELEASE_SECONDS` after its last use (`IdleRelease`), so a long-lived store (a
  notebook, a `RunResult`, `run()` between its group commits) never blocks other processes
  between calls, while a burst of calls reuses one connection (opening costs ~16-45 ms).
  `hold_lock=True` keeps the file for the engine's life, `hold_lock=False` opens a
  connection per operation (NullPool). `read_only=True` opens the file read-only.
- SQLite: WAL, foreign keys, busy timeout and `BEGIN IMMEDIATE` for every transaction
  (pysqlite's deferred BEGIN loses updates between writer processes).
- PostgreSQL: psycopg 3, insertmanyvalues bulk inserts, NaN-free JSON.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from nirs4all_store.db.duckdb.file_lock import (
    IDLE_RELEASE_SECONDS,
    IdleRelease,
    LockRequest,
    install_lock_wait,
)
from nirs4all_store.types import json_text

URL_ENV_VAR = "NIRS4ALL_STORE_URL"
DB_FILENAME = "store.duckdb"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def json_serializer(value: Any) -> str:
    """Strict JSON (NaN/inf were already turned into null by the column type)."""
    return json_text(value)


def looks_like_url(value: object) -> bool:
    return isinstance(value, (URL, Engine)) or (isinstance(value, str) and "://" in value)


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL; plain ``postgresql://`` means psycopg 3 (the driver we ship)."""
    parsed = sa.make_url(url) if isinstance(url, str) else url
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def duckdb_url(path: Path) -> URL:
    return URL.create("duckdb", database=str(path))


def database_file(url: URL) -> Path | None:
    """The file behind an embedded database URL (DuckDB/SQLite), None for a server
    (a read-only SQLite URI, `file:...?mode=ro&uri=true`, names its file too)."""
    if url.get_backend_name() not in ("duckdb", "sqlite") or url.database in (
        None,
        "",
        ":memory:",
    ):
        return None
    database = url.database
    if url.query.get("uri") == "true" and database.startswith("file:"):
        database = database[len("file:") :]
    return Path(database)


def is_server(url: URL) -> bool:
    return url.get_backend_name() not in ("duckdb", "sqlite")


def create_store_engine(
    url: str | URL,
    *,
    lock_timeout: float = 10.0,
    hold_lock: bool | None = None,
    read_only: bool = False,
    pool: dict[str, Any] | None = None,
) -> Engine:
    """An engine for `url` with the settings this store relies on.

    `pool` holds SQLAlchemy pool settings for server databases (`poolclass`, `pool_size`,
    `max_overflow`, `pool_recycle`, `pool_pre_ping`, `pool_timeout`; `poolclass="null"` for
    short-lived HPC workers); `pool_settings_from_env()` reads them from the environment.
    """
    url = normalise_url(url)
    backend = url.get_backend_name()
    kwargs: dict[str, Any] = {"json_serializer": json_serializer}
    if backend == "duckdb":
        engine = _duckdb_engine(url, kwargs, lock_timeout, hold_lock, read_only)
    elif backend == "sqlite":
        if read_only:
            url = sqlite_read_only_url(url)
        kwargs["connect_args"] = {
            "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
            "check_same_thread": False,
        }
        if hold_lock is False:
            kwargs["poolclass"] = NullPool
        engine = sa.create_engine(url, **kwargs)
        configure_sqlite(engine, read_only=read_only)
    else:
        kwargs.update(server_pool_settings(pool))
        if read_only:
            kwargs["execution_options"] = {"postgresql_readonly": True}
        engine = sa.create_engine(url, **kwargs)
    dispose_in_forked_children(engine)
    return engine


def _duckdb_engine(
    url: URL, kwargs: dict[str, Any], lock_timeout: float, hold_lock: bool | None, read_only: bool
) -> Engine:
    if hold_lock is not True:  # None: NullPool + IdleRelease's anchor; False: NullPool alone
        kwargs["poolclass"] = NullPool
        # A NullPool connection is closed when returned, and closing discards any open
        # transaction: the pool's reset ROLLBACK is one more statement per call (~0.4 ms,
        # 3% of a row call on the seed workload).
        kwargs["pool_reset_on_return"] = None
    if read_only:
        kwargs["connect_args"] = {"read_only": True}
    engine = sa.create_engine(url, **kwargs)
    # duckdb-engine opts out of SQLAlchemy's compiled-statement cache (untested upstream),
    # so every statement is compiled again: ~0.3-0.5 ms of Python each, paid with the GIL
    # held, which is what slows run()'s training thread while its writer records. Its SQL
    # comes from the PostgreSQL compiler, which caches; the whole suite runs with it on.
    engine.dialect._supports_statement_cache = True  # this engine only
    request = LockRequest.beside(database_file(url))
    install_lock_wait(engine, lock_timeout, request)
    if hold_lock is None:
        IdleRelease(engine, IDLE_RELEASE_SECONDS, request)
    return engine


def server_pool_settings(pool: dict[str, Any] | None) -> dict[str, Any]:
    """create_engine keywords for a server database's pool (pre-ping on by default)."""
    settings: dict[str, Any] = {"pool_pre_ping": True, **(pool or {})}
    allowed = {
        "poolclass",
        "pool_size",
        "max_overflow",
        "pool_recycle",
        "pool_pre_ping",
        "pool_timeout",
    }
    unknown = set(settings) - allowed
    if unknown:
        raise ValueError(
            f"unknown pool setting(s) {sorted(unknown)}; expected some of {sorted(allowed)}"
        )
    kind = settings.get("poolclass")
    if isinstance(kind, str):
        classes = {"null": NullPool, "queue": sa.pool.QueuePool, "static": sa.pool.StaticPool}
        if kind.lower() not in classes:
            raise ValueError(f"poolclass must be one of {sorted(classes)}, got {kind!r}")
        settings["poolclass"] = classes[kind.lower()]
    if settings.get("poolclass") is NullPool:
        for key in ("pool_size", "max_overflow", "pool_timeout"):
            settings.pop(key, None)
    return settings


#: Environment variables for server pools (apps and HPC workers set them once).
POOL_ENV = {
    "NIRS4ALL_STORE_POOL": ("poolclass", str),
    "NIRS4ALL_STORE_POOL_SIZE": ("pool_size", int),
    "NIRS4ALL_STORE_MAX_OVERFLOW": ("max_overflow", int),
    "NIRS4ALL_STORE_POOL_RECYCLE": ("pool_recycle", int),
}


def pool_settings_from_env() -> dict[str, Any]:
    """Pool settings named by NIRS4ALL_STORE_POOL (null|queue), _POOL_SIZE, _MAX_OVERFLOW,
    _POOL_RECYCLE; a bad value is refused naming the variable."""
    settings: dict[str, Any] = {}
    for name, (key, kind) in POOL_ENV.items():
        raw = os.environ.get(name, "").strip()
        if raw:
            try:
                settings[key] = kind(raw)
            except ValueError as exc:
                raise ValueError(f"{name} must be an integer, got {raw!r}") from exc
    return settings


def dispose_in_forked_children(engine: Engine) -> None:
    """A forked child must not reuse its parent's connections (shared sockets/file handles):
    its copy of the pool is dropped without closing them (SQLAlchemy's fork recipe)."""
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))


_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def with_schema(url: URL, schema: str) -> URL:
    """`url` with every store table (and the version table) in PostgreSQL schema `schema`:
    the connection's search_path starts with it (as `?options=-csearch_path=...` would)."""
    if url.get_backend_name() != "postgresql":
        raise ValueError(
            f"schema= is a PostgreSQL option; got schema={schema!r} for a "
            f"{url.get_backend_name()} database"
        )
    if not isinstance(schema, str) or not _SCHEMA_NAME.match(schema):
        raise ValueError(
            f"schema must be a plain SQL identifier (letters, digits, '_'), got {schema!r}"
        )
    return url.update_query_dict({"options": f"-csearch_path={schema}"})


def sqlite_read_only_url(url: URL) -> URL:
    """`sqlite:///path` as a read-only URI (`file:path?mode=ro`): writes fail in SQLite."""
    if url.database in (None, "", ":memory:"):
        raise ValueError("a read-only SQLite store needs a database file")
    # SQLAlchemy's pysqlite dialect: `uri=true` in the query makes it pass the database as
    # a URI (file:...) with the other query parameters (mode=ro) appended.
    return url.set(database=f"file:{url.database}").update_query_dict({"mode": "ro", "uri": "true"})


#: Execution option of a read unit of work: SQLite begins it DEFERRED (no write lock).
READ_OPTION = "nirs4all_read"


def configure_sqlite(engine: Engine, *, read_only: bool = False) -> None:
    """WAL + foreign keys + busy timeout on connect; BEGIN IMMEDIATE for writes, a deferred
    BEGIN for reads (a read taking the write lock would queue behind every writer)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_conn.cursor()
        if not read_only:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        reading = read_only or conn.get_execution_options().get(READ_OPTION, False)
        conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


def url_from_env() -> str | None:
    value = os.environ.get(URL_ENV_VAR, "").strip()
    return value or None
