"""Content-addressed artifact files: `artifacts/<2 hex>/<sha256>.<ext>`.

Writes are atomic (temporary file in the same folder, fsync, `os.replace`, fsync of the
folder), so a crash never leaves a truncated file under a final name. Reads verify the
SHA-256 every time: hashing runs at ~1-2 GB/s; measured (benchmarks/bench_artifacts.py) it is
<1% of a load for small fitted models, ~5-8% for a 2.7 MB random forest, and 20-40% only for
large raw arrays, which unpickle almost for free.
This module knows files only; rows and reference counts live in the repositories.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nirs4all_store.durable import TEMP_PREFIX, atomic_write, fsync_dir
from nirs4all_store.errors import ArtifactIntegrityError

FORMAT_EXTENSIONS = {"joblib": "joblib", "pickle": "pkl"}
_CHUNK = 1 << 20


def serialize(obj: Any, fmt: str) -> bytes:
    """Bytes of `obj` in `fmt` ("joblib" or "pickle")."""
    check_format(fmt)
    if fmt == "pickle":
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    import joblib  # deferred: joblib is heavy and not needed to open a workspace

    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


def deserialize(data: bytes, fmt: str) -> Any:
    """Inverse of `serialize`. Executes code from the bytes: load only trusted artifacts."""
    check_format(fmt)
    if fmt == "pickle":
        return pickle.loads(data)  # artifacts are trusted content (documented)
    import joblib

    return joblib.load(io.BytesIO(data))


def check_format(fmt: str) -> None:
    if fmt not in FORMAT_EXTENSIONS:
        raise ValueError(
            f"unsupported artifact format {fmt!r}: expected one of {sorted(FORMAT_EXTENSIONS)}"
        )


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def relative_path(content_hash: str, fmt: str) -> str:
    """Where bytes with this hash live, relative to the artifacts folder (POSIX style)."""
    return f"{content_hash[:2]}/{content_hash}.{FORMAT_EXTENSIONS[fmt]}"


_IO_POOL_SIZE = 8


def put_many(
    target: ArtifactFiles, items: list[tuple[bytes, str, str | None]]
) -> list[tuple[str, str]]:
    """`ArtifactFiles.put` for many (bytes, format, sha256 or None) items: files written and
    fsynced by a few threads at once (fsync releases the GIL and the file system commits
    them together), then one fsync per shard folder. Returns (sha256, relative path) in
    order."""

    def put(item: tuple[bytes, str, str | None]) -> tuple[str, str]:
        return target.put(item[0], item[1], sync_dir=False, content_hash=item[2])

    if len(items) <= 1:
        stored = [put(item) for item in items]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(_IO_POOL_SIZE, len(items))) as pool:
            stored = list(pool.map(put, items))
    for folder in sorted({target.path(relpath).parent for _, relpath in stored}):
        fsync_dir(folder)
    return stored


class ArtifactFiles:
    """The artifacts folder of a workspace."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, relpath: str, artifact_id: str = "") -> Path:
        """The absolute path of a stored file; refuses one that would leave the folder.

        A row's path comes from the database: `../../x`, an absolute path or a symlinked
        shard (`artifacts/ee -> /elsewhere`) would let gc or verify delete files outside
        the workspace (issue 15 item 4). Raises `ArtifactIntegrityError` naming it.
        """
        parts = Path(relpath).parts if isinstance(relpath, str) else ()
        if (
            not parts
            or Path(relpath).is_absolute()
            or any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts)
        ):
            raise ArtifactIntegrityError(
                f"artifact path {relpath!r} is not a plain path inside the artifacts folder "
                f"{self.root}: refusing to use it",
                artifact_id=artifact_id,
                path=str(relpath),
            )
        current = self.root
        for part in parts:
            current = current / part
            try:
                is_link = stat.S_ISLNK(os.lstat(current).st_mode)
            except (FileNotFoundError, NotADirectoryError):
                break
            if is_link:
                raise ArtifactIntegrityError(
                    f"artifact path {relpath!r} goes through the symbolic link {current}: "
                    "refusing to follow it out of the artifacts folder",
                    artifact_id=artifact_id,
                    path=str(current),
                )
        return self.root.joinpath(*parts)

    def is_safe(self, relpath: str) -> bool:
        try:
            self.path(relpath)
        except ArtifactIntegrityError:
            return False
        return True

    def put(
        self, data: bytes, fmt: str, *, sync_dir: bool = True, content_hash: str | None = None
    ) -> tuple[str, str]:
        """Store `data`; returns (sha256, relative path). Existing intact bytes are reused.

        An existing file is hashed, not just sized: a corrupted copy (a flipped byte keeps the
        size) is replaced by the good bytes, so re-saving an object heals its file.
        `content_hash` is `data`'s SHA-256 when the caller already computed it (the vault
        hashes at the call, for the id): hashing a 30 MB model again cost 20 ms (measured).
        """
        if content_hash is None:
            content_hash = sha256_bytes(data)
        relpath = relative_path(content_hash, fmt)
        target = self.path(relpath)
        if not self._holds(target, content_hash, len(data)):
            atomic_write(target, data, sync_dir=sync_dir)
        else:
            # Reused bytes are young again: an orphan check judging by age must not take
            # the file of a save in flight for an old leftover (issue 15 item 1).
            with contextlib.suppress(OSError):
                os.utime(target)
        return content_hash, relpath

    @staticmethod
    def _holds(target: Path, content_hash: str, size: int) -> bool:
        try:
            if target.stat().st_size != size:
                return False
            return sha256_file(target) == content_hash
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return False

    def read_verified(self, relpath: str, content_hash: str, artifact_id: str) -> bytes:
        """The file's bytes, checked against the recorded hash."""
        target = self.path(relpath, artifact_id)
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"artifact {artifact_id} file is missing: {target}") from None
        except IsADirectoryError:
            raise ArtifactIntegrityError(
                f"artifact {artifact_id} path {target} is a folder, not a file",
                artifact_id=artifact_id,
                path=str(target),
            ) from None
        actual = sha256_bytes(data)
        if actual != content_hash:
            raise ArtifactIntegrityError(
                f"artifact {artifact_id} file {target} is corrupted: SHA-256 {actual} "
                f"!= recorded {content_hash}",
                artifact_id=artifact_id,
                path=str(target),
            )
        return data

    def delete(self, relpath: str) -> bool:
        """Remove a file; a file already missing is not an error. Returns True if removed.

        A path that would leave the folder (`is_safe`) is never touched: its row may go,
        the file outside stays (verify reports such rows)."""
        if not self.is_safe(relpath):
            return False
        target = self.path(relpath)
        try:
            if not stat.S_ISREG(os.lstat(target).st_mode):
                return False
            target.unlink()
        except FileNotFoundError:
            return False
        with contextlib.suppress(OSError):
            target.parent.rmdir()  # only succeeds when the shard is empty
        return True

    def shards(self) -> list[Path]:
        """The shard folders; symbolic links are never followed (they may lead anywhere)."""
        if not self.root.is_dir():
            return []
        return [
            entry
            for entry in sorted(self.root.iterdir())
            if not entry.is_symlink() and entry.is_dir()
        ]

    def iter_files(self) -> Iterator[str]:
        """Relative paths of every stored file (temporary files and symlinks excluded)."""
        for shard in self.shards():
            for entry in sorted(shard.iterdir()):
                if (
                    not entry.is_symlink()
                    and entry.is_file()
                    and not entry.name.startswith(TEMP_PREFIX)
                ):
                    yield f"{shard.name}/{entry.name}"

    def age_seconds(self, relpath: str) -> float:
        return time.time() - self.path(relpath).stat().st_mtime

    def remove_stale_temporaries(self, older_than_seconds: float) -> int:
        """Delete temporary files left by a crash mid-write."""
        removed = 0
        for tmp in (t for shard in self.shards() for t in shard.glob(f"{TEMP_PREFIX}*")):
            with contextlib.suppress(OSError):
                if tmp.is_symlink() or not tmp.is_file():
                    continue
                if time.time() - tmp.stat().st_mtime >= older_than_seconds:
                    tmp.unlink()
                    removed += 1
        return removed
