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
import threading
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
#: Idle time after which a DuckDB engine lets the file go (hold_lock=None): longer than the
#: gap between the calls of a recording loop, far shorter than a reader's lock_timeout.
IDLE_RELEASE_SECONDS = 0.25

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
    if read_only:
        kwargs["connect_args"] = {"read_only": True}
    engine = sa.create_engine(url, **kwargs)
    # duckdb-engine opts out of SQLAlchemy's compiled-statement cache (untested upstream),
    # so every statement is compiled again: ~0.3-0.5 ms of Python each, paid with the GIL
    # held, which is what slows run()'s training thread while its writer records. Its SQL
    # comes from the PostgreSQL compiler, which caches; the whole suite runs with it on.
    engine.dialect._supports_statement_cache = True  # this engine only
    _install_duckdb_lock_wait(engine, lock_timeout)
    if hold_lock is None:
        IdleRelease(engine, IDLE_RELEASE_SECONDS)
    return engine


class IdleRelease:
    """Keep a DuckDB file open while an engine is in use, and let it go `seconds` after.

    The engine runs on a NullPool (each call connects and closes) plus one idle "anchor"
    connection: while the anchor is open, DuckDB keeps the database instance, so a call's
    connect is cheap (measured: 7.6 ms per insert with the anchor, 10.3 ms on a QueuePool,
    97 ms without either); closing the anchor after `seconds` without use frees the file
    for other processes. DuckDB counts connections per instance, so closing the anchor
    while a call runs is safe (the instance closes with the last connection), and no pool
    bookkeeping is touched (an earlier QueuePool.dispose() from a timer raced with checkouts
    and corrupted the pool's counts). `engine.dispose()` closes the anchor at once.
    """

    def __init__(self, engine: Engine, seconds: float) -> None:
        self.engine = engine
        self.seconds = seconds
        # Re-entrant: closing the anchor checks it in, which calls _checked_in in this thread.
        self._lock = threading.RLock()
        self._last = 0.0
        self._anchor: Any = None
        self._busy = False  # opening or closing the anchor (its own events are ignored)
        self._timer: threading.Timer | None = None
        event.listen(engine, "checkin", self._checked_in)
        event.listen(engine, "engine_disposed", lambda _engine: self.release())

    def _checked_in(self, *_: Any) -> None:
        with self._lock:
            if self._busy:
                return
            self._last = time.monotonic()
            if self._anchor is None:
                self._busy = True
                try:
                    self._anchor = self.engine.raw_connection()
                finally:
                    self._busy = False
            if self._timer is None:
                self._schedule(self.seconds)

    def _schedule(self, delay: float) -> None:
        timer = threading.Timer(delay, self._fire)
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
            idle = time.monotonic() - self._last
            if idle < self.seconds:
                self._schedule(self.seconds - idle)
                return
            self._close_anchor()

    def release(self) -> None:
        """Close the anchor now (the file is free once no call is running)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._close_anchor()

    def _close_anchor(self) -> None:
        anchor, self._anchor = self._anchor, None
        if anchor is not None:
            self._busy = True
            try:
                anchor.close()
            finally:
                self._busy = False


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
