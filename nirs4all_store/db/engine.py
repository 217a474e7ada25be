"""Engine creation: URL resolution and the per-backend settings measured in STACK_FACTS.

- DuckDB: one read-write process per file. Opening a locked file is retried until
  `lock_timeout` and then raises `WorkspaceLockedError` naming the holder's PID.
  `hold_lock=False` uses a NullPool so the file is free between operations.
- SQLite: WAL, foreign keys, busy timeout and `BEGIN IMMEDIATE` for every transaction
  (pysqlite's deferred BEGIN loses updates between writer processes).
- PostgreSQL: psycopg 3, insertmanyvalues bulk inserts, NaN-free JSON.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from nirs4all_store.errors import WorkspaceLockedError
from nirs4all_store.types import json_text

URL_ENV_VAR = "NIRS4ALL_STORE_URL"
DB_FILENAME = "store.duckdb"
SQLITE_BUSY_TIMEOUT_MS = 30_000

_LOCK_PID = re.compile(r"PID (\d+)")


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
    """The file behind an embedded database URL (DuckDB/SQLite), None for a server."""
    if url.get_backend_name() in ("duckdb", "sqlite") and url.database not in (
        None,
        "",
        ":memory:",
    ):
        return Path(url.database)
    return None


def is_server(url: URL) -> bool:
    return url.get_backend_name() not in ("duckdb", "sqlite")


def create_store_engine(
    url: str | URL, *, lock_timeout: float = 10.0, hold_lock: bool = True
) -> Engine:
    """An engine for `url` with the settings this store relies on."""
    url = normalise_url(url)
    backend = url.get_backend_name()
    kwargs: dict[str, Any] = {"json_serializer": json_serializer}
    if backend == "duckdb":
        if not hold_lock:
            kwargs["poolclass"] = NullPool
        engine = sa.create_engine(url, **kwargs)
        # duckdb-engine opts out of SQLAlchemy's compiled-statement cache (untested upstream),
        # so every statement is compiled again: ~0.3-0.5 ms of Python each, paid with the GIL
        # held, which is what slows run()'s training thread while its writer records. Its SQL
        # comes from the PostgreSQL compiler, which caches; the whole suite runs with it on.
        engine.dialect._supports_statement_cache = True  # this engine only
        _install_duckdb_lock_wait(engine, lock_timeout)
    elif backend == "sqlite":
        kwargs["connect_args"] = {
            "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
            "check_same_thread": False,
        }
        if not hold_lock:
            kwargs["poolclass"] = NullPool
        engine = sa.create_engine(url, **kwargs)
        configure_sqlite(engine)
    else:
        kwargs["pool_pre_ping"] = True
        engine = sa.create_engine(url, **kwargs)
    return engine


def configure_sqlite(engine: Engine) -> None:
    """WAL + foreign keys + busy timeout on connect; BEGIN IMMEDIATE on begin."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    return "Could not set lock on file" in text or "Conflicting lock" in text


def lock_holder_pid(exc: BaseException) -> int | None:
    match = _LOCK_PID.search(str(exc))
    return int(match.group(1)) if match else None


def locked_error(path: str, exc: BaseException, waited: float) -> WorkspaceLockedError:
    pid = lock_holder_pid(exc)
    holder = f"process {pid}" if pid else "another process"
    return WorkspaceLockedError(
        f"workspace database {path} is locked by {holder} (waited {waited:.1f}s). "
        "DuckDB admits one writing process per file: close the other process, or use "
        "SQLite/PostgreSQL (url=... or NIRS4ALL_STORE_URL) for parallel writers.",
        path=path,
        pid=pid,
    )


def _install_duckdb_lock_wait(engine: Engine, lock_timeout: float) -> None:
    """Retry opening a locked DuckDB file with back-off until `lock_timeout` seconds."""
    path = engine.url.database or ":memory:"

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        start = time.monotonic()
        delay = 0.02
        while True:
            try:
                return dialect.connect(*cargs, **cparams)
            except Exception as exc:
                if not is_lock_error(exc):
                    raise
                waited = time.monotonic() - start
                if waited >= lock_timeout:
                    raise locked_error(path, exc, waited) from exc
                time.sleep(min(delay, max(lock_timeout - waited, 0.0)))
                delay = min(delay * 2, 0.5)


def url_from_env() -> str | None:
    value = os.environ.get(URL_ENV_VAR, "").strip()
    return value or None
