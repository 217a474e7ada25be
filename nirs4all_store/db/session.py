"""Units of work: one Session per transaction, retries of conflicts, error translation.

Conflicting concurrent updates are normal under load (DuckDB "Conflict on update",
PostgreSQL serialization failures and deadlocks, SQLite "database is locked"): a unit of
work is retried a bounded number of times. Driver exceptions never reach callers: they
become `DatabaseError` (or `ConstraintError` for integrity violations).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from nirs4all_store.db.engine import READ_OPTION
from nirs4all_store.errors import ConstraintError, DatabaseError, StoreError

T = TypeVar("T")

# 16: duckdb 1.4.4 reports "Conflict on tuple deletion" for longer than 2.x under threads
# (two threaded tests needed more than 8 attempts there; the back-off caps at 0.5 s).
MAX_ATTEMPTS = 16

_TRANSIENT_MARKERS = (
    "conflict on update",
    "conflict on tuple deletion",
    "write-write conflict",
    "database is locked",
    "could not serialize access",
    "deadlock detected",
    "serialization failure",
)


def is_driver_error(exc: BaseException) -> bool:
    """A SQLAlchemy error or a raw driver error (DuckDB's Arrow path raises those)."""
    if isinstance(exc, sa.exc.SQLAlchemyError):
        return True
    module = type(exc).__module__ or ""
    return module.split(".")[0] in ("duckdb", "_duckdb", "sqlite3", "psycopg")


def is_transient(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _TRANSIENT_MARKERS)


# DuckDB reports a duplicate key found only at commit (two transactions inserted the same
# key) as a TransactionException, not a ConstraintException: recognise it by its message.
_INTEGRITY_MARKERS = ("primary key or unique constraint violation",)


def is_integrity(exc: BaseException) -> bool:
    if isinstance(exc, sa.exc.IntegrityError):
        return True
    name = type(exc).__name__
    if name in (
        "ConstraintException",
        "IntegrityError",
        "UniqueViolation",
        "ForeignKeyViolation",
    ):
        return True
    text = str(exc).lower()
    return any(marker in text for marker in _INTEGRITY_MARKERS)


def translate(exc: BaseException, what: str) -> StoreError:
    """The store's own exception for a driver error (message kept, class hidden)."""
    orig = getattr(exc, "orig", None) or exc
    message = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    if is_integrity(exc) or is_integrity(orig):
        return ConstraintError(f"{what} conflicts with stored data: {message}")
    return DatabaseError(f"{what} failed: {message}")


#: Session.info key: functions an explicit transaction runs, in order, just before it commits
#: (the facade's write-behind queue flushes there).
BEFORE_COMMIT = "nirs4all_store.before_commit"


def before_commit(session: Session, hook: Callable[[Session], None]) -> None:
    """Run `hook(session)` when `session`'s explicit transaction is about to commit."""
    session.info.setdefault(BEFORE_COMMIT, []).append(hook)


class UnitOfWork:
    """Runs functions in transactions; nested calls join the thread's open transaction."""

    def __init__(self, factory: sessionmaker[Session], *, read_only: bool = False) -> None:
        self.factory = factory
        self.read_only = read_only
        self._local = threading.local()
        bind = factory.kw.get("bind")
        dialect = getattr(getattr(bind, "dialect", None), "name", "")
        # What a read unit of work asks of its connection: SQLite begins it DEFERRED (the
        # engine's "begin" hook), PostgreSQL runs it as a READ ONLY transaction.
        self._read_options: dict[str, Any] = {READ_OPTION: True}
        if dialect == "postgresql":
            self._read_options["postgresql_readonly"] = True
        #: Entered before an explicit transaction begins and left after it ends: the
        #: artifact vault puts its shared file lock here (file lock before database, always).
        self.transaction_guard: Callable[[], AbstractContextManager[Any]] = nullcontext

    @property
    def current(self) -> Session | None:
        return getattr(self._local, "session", None)

    @contextmanager
    def transaction(self, what: str = "transaction") -> Iterator[Session]:
        """An explicit transaction: everything inside commits once (or not at all)."""
        if self.current is not None:
            yield self.current
            return
        with self.transaction_guard():
            session = self.factory()
            self._local.session = session
            try:
                with session.begin():
                    yield session
                    for hook in session.info.pop(BEFORE_COMMIT, ()):
                        hook(session)
            except Exception as exc:
                if is_driver_error(exc):
                    raise translate(exc, what) from exc
                raise
            finally:
                self._local.session = None
                session.close()

    def run(
        self,
        fn: Callable[[Session], T],
        what: str,
        *,
        retry_integrity: bool = False,
        read: bool = False,
    ) -> T:
        """`fn(session)` in its own transaction (or the open one), retried on conflicts.

        `read=True` marks a unit of work that only reads: it never takes a write lock."""
        if self.current is not None:
            try:
                return fn(self.current)
            except Exception as exc:
                if is_driver_error(exc):
                    raise translate(exc, what) from exc
                raise
        delay = 0.01
        for attempt in range(1, MAX_ATTEMPTS + 1):
            session = self.factory()
            self._local.session = session
            try:
                with session.begin():
                    if read or self.read_only:
                        session.connection(execution_options=self._read_options)
                    return fn(session)
            except Exception as exc:
                if not is_driver_error(exc):
                    raise
                retriable = is_transient(exc) or (retry_integrity and is_integrity(exc))
                if not retriable or attempt == MAX_ATTEMPTS:
                    raise translate(exc, what) from exc
            finally:
                self._local.session = None
                session.close()
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.5)
        raise AssertionError("unreachable")  # pragma: no cover


def raw_connection(session: Session) -> Any:
    """The driver connection behind a session (inside its transaction)."""
    return session.connection().connection.driver_connection
