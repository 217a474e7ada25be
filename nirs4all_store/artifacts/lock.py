"""A workspace-wide reader/writer file lock between artifact saves and artifact deletion.

Saving bytes that already exist reuses the file; garbage collection unlinks files. Without
a lock a gc in another process could unlink a file between a save's check and its commit.
Saves hold the lock shared (they run in parallel), gc and deletes hold it exclusive.
POSIX `flock`; on platforms without it the lock is a no-op (one process per workspace).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILENAME = ".artifacts.lock"


class ArtifactLock:
    def __init__(self, workspace: Path) -> None:
        self.path = Path(workspace) / LOCK_FILENAME

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def shared(self) -> Iterator[None]:
        return self._locked(fcntl.LOCK_SH if fcntl else 0)  # type: ignore[return-value]

    def exclusive(self) -> Iterator[None]:
        return self._locked(fcntl.LOCK_EX if fcntl else 0)  # type: ignore[return-value]
