"""nirs4all-store: persistence of NIRS machine-learning workspaces.

Quick start::

    from nirs4all_store import WorkspaceStore
    with WorkspaceStore("workspace") as store:
        run_id = store.begin_run("my run", config={}, datasets=[])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

# Heavier parts (scikit-learn, joblib) load on first use, so `import nirs4all_store` and
# opening a workspace stay fast: name -> module that defines it.
_LAZY = {
    "run": "runner",
    "RunResult": "runner",
    "predict": "bundle",
    "load_bundle": "bundle",
    "Bundle": "bundle",
    "export_chain": "bundle",
    "replay_chain": "replay",
    "PipelineLibrary": "library",
    "adopt_legacy_workspace": "legacy",
    "AdoptionReport": "legacy",
    "Dataset": "datasets",
    "DatasetError": "datasets",
    "synthetic_nirs": "datasets",
    "load_nirs4all_folder": "datasets",
    "SNV": "transforms",
}

if TYPE_CHECKING:
    from .bundle import Bundle, export_chain, load_bundle, predict
    from .datasets import Dataset, DatasetError, load_nirs4all_folder, synthetic_nirs
    from .legacy import AdoptionReport, adopt_legacy_workspace
    from .library import PipelineLibrary
    from .replay import replay_chain
    from .runner import RunResult, run
    from .transforms import SNV


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nirs4all_store' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "SNV",
    "AdoptionError",
    "AdoptionReport",
    "ArtifactIntegrityError",
    "Bundle",
    "BundleError",
    "ConstraintError",
    "DatabaseError",
    "Dataset",
    "DatasetError",
    "MigrationRequiredError",
    "PipelineLibrary",
    "RunResult",
    "SchemaTooNewError",
    "SchemaVersionError",
    "StoreError",
    "UnknownSchemaError",
    "VerifyReport",
    "WorkspaceLockedError",
    "WorkspaceStore",
    "__version__",
    "adopt_legacy_workspace",
    "export_chain",
    "load_bundle",
    "load_nirs4all_folder",
    "predict",
    "replay_chain",
    "run",
    "synthetic_nirs",
]
