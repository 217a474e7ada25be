"""The DuckDB file lock: waiting for it, asking for it, and letting it go when idle.

DuckDB admits one read-write process per file, and while a process holds any connection no
other process can open the file, not even read-only (STACK_FACTS). Opening a locked file
is retried until `lock_timeout`, then `WorkspaceLockedError` names the holder's PID.
"""

from __future__ import annotations

import os
import re
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine

from nirs4all_store.errors import WorkspaceLockedError

#: Idle time after which a DuckDB engine lets the file go (hold_lock=None): longer than the
#: gap between the calls of a recording loop, far shorter than a reader's lock_timeout.
IDLE_RELEASE_SECONDS = 0.25
#: How long a waiting process's request (`LockRequest`) keeps a busy engine from holding the
#: file between its calls: longer than the waiter's retry interval (`LOCK_RETRY_MAX_S`).
REQUEST_FRESH_SECONDS = 0.5
#: Longest pause between two attempts to open a locked DuckDB file: a holder that yields
#: frees the file only between its calls (gaps of a few ms to a fit's length), so a waiter
#: must look often; a failed attempt costs well under a millisecond.
LOCK_RETRY_MAX_S = 0.05

_LOCK_PID = re.compile(r"PID (\d+)")
T = TypeVar("T")
#: The IdleRelease of each engine that has one (`IdleRelease.of`).
_RELEASES: weakref.WeakKeyDictionary[Engine, IdleRelease] = weakref.WeakKeyDictionary()


class LockRequest:
    """A waiting process's "please let go" for a DuckDB file, seen by the process holding it.

    DuckDB has no way to ask the holder of a file for it, so a process whose open fails on
    the lock touches a marker beside the database (`.store.duckdb.waiting`, mtime = when it
    last asked), and an idle-releasing engine (`IdleRelease`) checks that mtime at every
    check-in (one stat, ~2 us): while a request is fresh and not its own, it closes its
    anchor and keeps none, so the file is free between its calls. Without this, a writer
    whose calls come faster than `IDLE_RELEASE_SECONDS` (run() on a small workload) kept
    the file for the whole run and a dashboard saw the run only once it had finished.
    The marker holds no data; a folder that cannot be written (a read-only mount) just
    gets no request.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._own_ns = 0

    @classmethod
    def beside(cls, database: Path | None) -> LockRequest:
        """The request marker of database file `database` (None: in memory, no marker)."""
        if database is None:
            return cls(None)
        return cls(database.with_name(f".{database.name}.waiting"))

    def ask(self) -> None:
        if self.path is None:
            return
        now = time.time_ns()
        try:
            self.path.touch()
            os.utime(self.path, ns=(now, now))
        except OSError:
            return
        self._own_ns = now

    def pending(self) -> bool:
        """Another process (or engine) asked for the file within REQUEST_FRESH_SECONDS."""
        if self.path is None:
            return False
        try:
            asked = os.stat(self.path).st_mtime_ns
        except OSError:
            return False
        if asked == self._own_ns:
            return False
        return time.time_ns() - asked < REQUEST_FRESH_SECONDS * 1e9


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

    def __init__(self, engine: Engine, seconds: float, request: LockRequest | None = None) -> None:
        self.engine = engine
        self.seconds = seconds
        self.request = request or LockRequest(None)
        # Re-entrant: closing the anchor checks it in, which calls _checked_in in this thread.
        self._lock = threading.RLock()
        self._last = 0.0
        self._anchor: Any = None
        #: Bumped each time the anchor closes (the file may have been let go): `run`.
        self.generation = 0
        self._busy = False  # opening or closing the anchor (its own events are ignored)
        self._timer: threading.Timer | None = None
        event.listen(engine, "checkin", self._checked_in)
        event.listen(engine, "engine_disposed", lambda _engine: self.release())
        _RELEASES[engine] = self

    @staticmethod
    def of(engine: Engine) -> IdleRelease | None:
        """The idle release installed on `engine`, if any."""
        return _RELEASES.get(engine)

    def run(self, fn: Callable[[Any, int | None], T]) -> T:
        """`fn(driver_connection, held)` on the anchor, in autocommit (`db.direct`): one
        statement without a connection of its own (a fresh one costs ~0.7 ms more per call).
        Calls are serialised by the lock (DuckDB serialises their commits anyway), which also
        keeps the timer from closing the anchor under a running statement.

        `held` is the anchor's generation: while it stays the same, this process has held
        the file without a break, so no other process can have written it (DuckDB's file
        lock). While another process asks for the file, the call gets a connection of its
        own, let go after, and `held` is None."""
        with self._lock:
            if self.request.pending():
                self._close_anchor()
                conn = self.engine.raw_connection()
                try:
                    return fn(conn.driver_connection, None)
                finally:
                    conn.close()
            anchor = self._open_anchor()
            try:
                return fn(anchor.driver_connection, self.generation)
            except BaseException as exc:
                if not statement_error(exc):
                    self._close_anchor()  # an invalidated database or a broken connection
                raise
            finally:
                self._last = time.monotonic()
                if self._timer is None:
                    self._schedule(self.seconds)

    def _checked_in(self, *_: Any) -> None:
        with self._lock:
            if self._busy:
                return
            self._last = time.monotonic()
            if self.request.pending():
                # Another process waits for the file: hold it only while a call runs.
                self._close_anchor()
                return
            self._open_anchor()
            if self._timer is None:
                self._schedule(self.seconds)

    def _open_anchor(self) -> Any:
        """The anchor, opened if it is not (its own check-in event is ignored meanwhile)."""
        if self._anchor is None:
            self._busy = True
            try:
                self._anchor = self.engine.raw_connection()
            finally:
                self._busy = False
        return self._anchor

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
            self.generation += 1
            self._busy = True
            try:
                anchor.close()
            finally:
                self._busy = False


def statement_error(exc: BaseException) -> bool:
    """A DuckDB error that failed one autocommitted statement and left its connection as it
    was (a constraint, a conversion, a conflict): not a fatal one, which invalidates the
    database instance until every connection to it is closed."""
    module = (type(exc).__module__ or "").split(".")[0]
    return (
        module in ("duckdb", "_duckdb")
        and type(exc).__name__ != "FatalException"
        and "invalidated" not in str(exc)
    )


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


def is_closing_race(exc: BaseException) -> bool:
    """duckdb 1.4.4: a thread connecting while another closes the process's last connection
    to the file gets "Unique file handle conflict ... already attached" (seen once in the
    8-thread test under load, never on duckdb 2.x); a retry a few ms later opens it."""
    return "Unique file handle conflict" in str(exc)


def install_lock_wait(
    engine: Engine, lock_timeout: float, request: LockRequest | None = None
) -> None:
    """Retry opening a locked DuckDB file with back-off until `lock_timeout` seconds, asking
    the holder to let go (`LockRequest`) at every failed attempt."""
    path = engine.url.database or ":memory:"
    request = request or LockRequest(None)

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        start = time.monotonic()
        delay = 0.02
        while True:
            try:
                return dialect.connect(*cargs, **cparams)
            except Exception as exc:
                if is_closing_race(exc) and time.monotonic() - start < lock_timeout:
                    time.sleep(0.005)  # this process's instance is closing: open it anew
                    continue
                if not is_lock_error(exc):
                    raise
                waited = time.monotonic() - start
                if waited >= lock_timeout:
                    raise locked_error(path, exc, waited) from exc
                request.ask()
                time.sleep(min(delay, max(lock_timeout - waited, 0.0)))
                delay = min(delay * 2, LOCK_RETRY_MAX_S)
