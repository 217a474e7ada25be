"""The typed exceptions users catch.

Bad input raises the built-in KeyError / ValueError / TypeError (naming the bad value);
everything the store itself detects about a workspace raises a subclass of `StoreError`.
No SQLAlchemy or driver exception class reaches a caller: the repositories and the facade
translate them into `DatabaseError`.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the store raises about a workspace or its database."""


class DatabaseError(StoreError):
    """A database operation failed; the message keeps the driver's explanation."""


class ConstraintError(StoreError, ValueError):
    """A write conflicts with stored data (a duplicate natural key, a dangling reference)."""


class WorkspaceLockedError(StoreError):
    """Another process holds the DuckDB workspace file (one writer process per file)."""

    def __init__(self, message: str, *, path: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.pid = pid


class SchemaVersionError(StoreError):
    """The database schema is not the one this package can use as it stands."""


class SchemaTooNewError(SchemaVersionError):
    """The database was migrated by a newer nirs4all-store: upgrade the package."""


class MigrationRequiredError(SchemaVersionError):
    """A server database is older than this package: run `nirs4all-store db upgrade`."""


class UnknownSchemaError(SchemaVersionError):
    """The database holds tables that match neither this store's schema nor the legacy one."""


class ArtifactIntegrityError(StoreError):
    """An artifact file's bytes no longer match the SHA-256 recorded for it."""

    def __init__(self, message: str, *, artifact_id: str, path: str) -> None:
        super().__init__(message)
        self.artifact_id = artifact_id
        self.path = path


class BundleError(StoreError):
    """A `.n4a` bundle is malformed, unsafe, tampered with or of an unknown format version."""


class AdoptionError(StoreError):
    """Adopting a legacy workspace failed; the message says which database is intact."""


class ReadOnlyStoreError(StoreError, PermissionError):
    """A write was asked of a store opened with `read_only=True` (nothing was written)."""


class WorkspaceNotFoundError(StoreError, FileNotFoundError):
    """A read-only (or reading) open of a workspace whose database does not exist."""


class StoreClosedError(StoreError, RuntimeError):
    """A call on a `WorkspaceStore` after `close()` (a RuntimeError too: nirs4all's own store
    raised RuntimeError there, and its callers catch that)."""


class WriteBehindError(StoreError):
    """A write-behind flush failed: its rows were not written (the cause is chained)."""
