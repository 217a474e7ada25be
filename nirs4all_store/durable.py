"""Durable file operations: the one place that knows how to make a write survive a crash.

A file is written under a temporary name in its final folder, fsynced, renamed over the
final name with `os.replace` (atomic on POSIX and Windows), then the folder is fsynced so
the rename itself is durable. A crash leaves either the old file or the complete new one,
never a truncated file under a final name. Used by artifacts, exports, bundles, reports,
backups, vacuum and legacy adoption.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_PREFIX = ".tmp-"


def fsync_file(path: Path) -> None:
    """Flush a file's bytes to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (no-op where folders cannot be opened: Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace(source: Path, target: Path) -> None:
    """`os.replace` made durable: `source` must already be fsynced."""
    os.replace(source, target)
    fsync_dir(Path(target).parent)


def _create_temp(folder: Path, suffix: str = "") -> tuple[int, Path]:
    """A new temporary file in `folder`, opened for writing, with the permissions the umask
    gives (`tempfile.mkstemp` makes 0600 files, unreadable to the other users of a shared
    workspace)."""
    while True:
        path = folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}{suffix}"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path
        except FileExistsError:  # pragma: no cover - 64 random bits
            continue


def atomic_write(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Write `data` to `path` so that `path` holds either nothing (or its old bytes) or all.

    `sync_dir=False` leaves the folder's fsync to the caller (one per folder for a batch).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(path.parent)


@contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` (durably) when the
    block succeeds, removed when it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path.parent, path.suffix)
    os.close(fd)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def atomic_copy(source: Path, target: Path) -> None:
    """Copy `source` to `target` atomically and durably."""
    with atomic_target(target) as tmp:
        shutil.copyfile(source, tmp)
