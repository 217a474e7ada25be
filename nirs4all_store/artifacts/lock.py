"""A workspace-wide reader/writer file lock between artifact saves and artifact deletion.

Saving bytes that already exist reuses the file; garbage collection unlinks files. Without
a lock a gc in another process could unlink a file between a save's check and its commit.
Saves hold the lock shared (they run in parallel), gc and deletes hold it exclusive.

One lock order everywhere: this file lock first, then the database. A save outside a
transaction takes it around its own commit; `store.transaction()` takes it shared when it
begins (before any row is touched) and releases it after the commit, so a deleter holding
it exclusive never waits on rows held by a transaction that in turn waits on this lock
(issue 15 item 2: PostgreSQL hung for good, SQLite for minutes). Waiting is bounded by
`timeout` (a `WorkspaceLockedError` naming the lock file), never forever.
POSIX `flock`; on platforms without it the lock is a no-op (one process per workspace).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nirs4all_store.errors import WorkspaceLockedError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILENAME = ".artifacts.lock"
#: Longest wait for the artifact lock: a deleter waits for the transactions in flight to
#: commit (a run()'s group commit takes seconds), a transaction for a deletion to finish.
DEFAULT_LOCK_TIMEOUT = 600.0


class ArtifactLock:
    def __init__(self, workspace: Path, timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self.path = Path(workspace) / LOCK_FILENAME
        self.timeout = float(timeout)

    @contextmanager
    def _locked(self, mode: int, name: str) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._acquire(fd, mode, name)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _acquire(self, fd: int, mode: int, name: str) -> None:
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WorkspaceLockedError(
                        f"waited {self.timeout:g} s for the {name} artifact lock {self.path}: "
                        "another process holds it (a long transaction or a verify/gc)",
                        path=str(self.path),
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)

    def shared(self) -> Iterator[None]:
        return self._locked(fcntl.LOCK_SH if fcntl else 0, "shared")  # type: ignore[return-value]

    def exclusive(self) -> Iterator[None]:
        return self._locked(fcntl.LOCK_EX if fcntl else 0, "exclusive")  # type: ignore[return-value]
