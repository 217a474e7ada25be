"""nirs4all-store: persistence of NIRS machine-learning workspaces.

Quick start::

    from nirs4all_store import WorkspaceStore
    with WorkspaceStore("workspace") as store:
        run_id = store.begin_run("my run", config={}, datasets=[])
"""

from __future__ import annotations

from .errors import (
    AdoptionError,
    ArtifactIntegrityError,
    BundleError,
    ConstraintError,
    DatabaseError,
    MigrationRequiredError,
    SchemaTooNewError,
    SchemaVersionError,
    StoreError,
    UnknownSchemaError,
    WorkspaceLockedError,
)
from .maintenance import VerifyReport
from .store import WorkspaceStore

__version__ = "0.1.0"

__all__ = [
    "AdoptionError",
    "ArtifactIntegrityError",
    "BundleError",
    "ConstraintError",
    "DatabaseError",
    "MigrationRequiredError",
    "SchemaTooNewError",
    "SchemaVersionError",
    "StoreError",
    "UnknownSchemaError",
    "VerifyReport",
    "WorkspaceLockedError",
    "WorkspaceStore",
    "__version__",
]
