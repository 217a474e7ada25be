"""Recognising a DuckDB workspace file: its main header, and attaching it.

The header says which DuckDB wrote a file (its storage format version and, since v0.10,
the library version), so a file the installed DuckDB cannot read gets an error that names
the writer and the way to convert it. `attach` opens a workspace file inside an adoption's
in-memory connection with those errors.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import duckdb

from nirs4all_store.db.duckdb.file_lock import is_lock_error, locked_error
from nirs4all_store.errors import AdoptionError

__all__ = [
    "DuckDBFileHeader",
    "DuckDBFileVersionError",
    "attach",
    "read_duckdb_header",
    "unreadable_database_error",
]

#: DuckDB storage format versions of files written before DuckDB recorded its own version.
_STORAGE_VERSIONS: dict[int, str] = {
    64: "v0.9.0 or later",
    51: "v0.8.0 or v0.8.1",
    43: "v0.7.0 or v0.7.1",
    39: "v0.6.0 or v0.6.1",
    38: "v0.5.0 or v0.5.1",
    33: "v0.3.3, v0.3.4 or v0.4.0",
    31: "v0.3.2",
    27: "v0.3.1",
    25: "v0.3.0",
}

# Main header layout: checksum u64, b"DUCK", storage version u64, 4 flag u64s, then (since
# v0.10) the library version string and source id, 32 bytes each, NUL padded.
_MAGIC_OFFSET, _VERSION_OFFSET, _LIBRARY_OFFSET, _SOURCE_OFFSET, _FIELD = 8, 12, 52, 84, 32


@dataclass(frozen=True)
class DuckDBFileHeader:
    """What a DuckDB file's main header says about the DuckDB that wrote it."""

    storage_version: int
    library_version: str | None
    source_id: str | None

    @property
    def writer(self) -> str:
        if self.library_version:
            return self.library_version
        return _STORAGE_VERSIONS.get(
            self.storage_version, f"unknown (storage version {self.storage_version})"
        )


def read_duckdb_header(path: str | Path) -> DuckDBFileHeader | None:
    """The header of a DuckDB file, None when the file is not one (no ``DUCK`` magic)."""
    with open(path, "rb") as fh:
        data = fh.read(_SOURCE_OFFSET + _FIELD)
    if len(data) < _VERSION_OFFSET + 8 or data[_MAGIC_OFFSET:_VERSION_OFFSET] != b"DUCK":
        return None
    (storage_version,) = struct.unpack_from("<Q", data, _VERSION_OFFSET)

    def text(offset: int) -> str | None:
        raw = data[offset : offset + _FIELD].split(b"\0", 1)[0]
        value = raw.decode("ascii", "replace")
        return value if value and value.isprintable() else None

    library = text(_LIBRARY_OFFSET) if storage_version >= 64 else None
    if library is not None and not library.startswith("v"):
        library = None
    return DuckDBFileHeader(storage_version, library, text(_SOURCE_OFFSET) if library else None)


class DuckDBFileVersionError(AdoptionError):
    """The installed DuckDB cannot read a workspace file; says who wrote it and how to convert."""

    def __init__(self, message: str, *, path: str, writer: str | None) -> None:
        super().__init__(message)
        self.path = path
        self.writer = writer


def unreadable_database_error(path: str | Path, exc: BaseException) -> AdoptionError:
    """The error for a DuckDB file the installed DuckDB cannot open."""
    header = read_duckdb_header(path)
    if header is None:
        return AdoptionError(f"{path} is not a DuckDB database file (no DUCK header): {exc}")
    exact = header.library_version
    if exact is not None and exact.lstrip("v") == duckdb.__version__:
        return AdoptionError(f"DuckDB {duckdb.__version__} cannot open {path}: {exc}")
    pin = f"duckdb=={exact.lstrip('v')}" if exact else f"the DuckDB {header.writer}"
    return DuckDBFileVersionError(
        f"{path} was written by DuckDB {header.writer} (storage format version "
        f"{header.storage_version}) and the installed DuckDB {duckdb.__version__} cannot read "
        f"it: {exc}. Convert it: in a separate environment install {pin}, open the file and "
        "run EXPORT DATABASE 'n4a_export'; then with DuckDB "
        f"{duckdb.__version__} open a new file, run IMPORT DATABASE 'n4a_export', keep the old "
        f"file aside and put the new one at {path}. Nothing was written.",
        path=str(path),
        writer=header.writer,
    )


def attach(con: duckdb.DuckDBPyConnection, path: Path, alias: str, *, read_only: bool) -> None:
    """ATTACH the DuckDB file `path` as `alias`; a lock or an unreadable file is explained."""
    options = " (READ_ONLY)" if read_only else ""
    literal = str(path).replace("'", "''")
    try:
        con.execute(f"ATTACH '{literal}' AS {alias}{options}")
    except duckdb.Error as exc:
        if is_lock_error(exc):
            raise locked_error(str(path), exc, 0.0) from exc
        raise unreadable_database_error(path, exc) from exc
