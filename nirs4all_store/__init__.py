"""nirs4all-store: persistence of NIRS machine-learning workspaces.

Quick start::

    from nirs4all_store import WorkspaceStore
    with WorkspaceStore("workspace") as store:
        run_id = store.begin_run("my run", config={}, datasets=[])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nirs4all_store._version import __version__
from nirs4all_store.artifacts.verify import VerifyReport
from nirs4all_store.errors import (
    AdoptionError,
    ArtifactIntegrityError,
    BundleError,
    ConstraintError,
    DatabaseError,
    MigrationRequiredError,
    ReadOnlyStoreError,
    SchemaTooNewError,
    SchemaVersionError,
    StoreClosedError,
    StoreError,
    UnknownSchemaError,
    WorkspaceLockedError,
    WorkspaceNotFoundError,
    WriteBehindError,
)
from nirs4all_store.extensions import register as _register
from nirs4all_store.store import WorkspaceStore

# The facade's workbench conveniences (WorkspaceStore.replay_chain, export_*): the core
# never imports the workbench, the package registers them here (nirs4all_store.extensions).
for _name, _target in {
    "replay_chain": "nirs4all_store.workbench.replay:replay_chain",
    "export_chain": "nirs4all_store.workbench.bundle:export_chain",
    "export_predictions_parquet": "nirs4all_store.workbench.exports:export_predictions_parquet",
    "export_run": "nirs4all_store.workbench.exports:export_run",
    "export_pipeline_config": "nirs4all_store.workbench.exports:export_pipeline_config",
}.items():
    _register(_name, _target)

# Heavier parts (scikit-learn, joblib) load on first use, so `import nirs4all_store` and
# opening a workspace stay fast: name -> module that defines it.
_LAZY = {
    "run": "workbench.training.session",
    "RunResult": "workbench.training.result",
    "predict": "workbench.bundle",
    "load_bundle": "workbench.bundle",
    "Bundle": "workbench.bundle",
    "export_chain": "workbench.bundle",
    "replay_chain": "workbench.replay",
    "SpectralAxisError": "workbench.axis",
    "PipelineLibrary": "workbench.library",
    "adopt_legacy_workspace": "legacy.adopt",
    "AdoptionReport": "legacy.adopt",
    "Dataset": "workbench.training.datasets",
    "DatasetError": "workbench.training.dataset_files",
    "synthetic_nirs": "workbench.training.datasets",
    "load_nirs4all_folder": "workbench.training.datasets",
    "SNV": "workbench.training.transforms",
    "MSC": "workbench.training.transforms",
    "SavitzkyGolay": "workbench.training.transforms",
    "Detrend": "workbench.training.transforms",
    "ALSBaseline": "workbench.training.transforms",
    "Grid": "workbench.training.grid",
}

if TYPE_CHECKING:
    from nirs4all_store.legacy.adopt import AdoptionReport, adopt_legacy_workspace
    from nirs4all_store.workbench.axis import SpectralAxisError
    from nirs4all_store.workbench.bundle import Bundle, export_chain, load_bundle, predict
    from nirs4all_store.workbench.library import PipelineLibrary
    from nirs4all_store.workbench.replay import replay_chain
    from nirs4all_store.workbench.training.dataset_files import DatasetError
    from nirs4all_store.workbench.training.datasets import (
        Dataset,
        load_nirs4all_folder,
        synthetic_nirs,
    )
    from nirs4all_store.workbench.training.grid import Grid
    from nirs4all_store.workbench.training.result import RunResult
    from nirs4all_store.workbench.training.session import run
    from nirs4all_store.workbench.training.transforms import (
        MSC,
        SNV,
        ALSBaseline,
        Detrend,
        SavitzkyGolay,
    )


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
    "MSC",
    "SNV",
    "ALSBaseline",
    "AdoptionError",
    "AdoptionReport",
    "ArtifactIntegrityError",
    "Bundle",
    "BundleError",
    "ConstraintError",
    "DatabaseError",
    "Dataset",
    "DatasetError",
    "Detrend",
    "Grid",
    "MigrationRequiredError",
    "PipelineLibrary",
    "ReadOnlyStoreError",
    "RunResult",
    "SavitzkyGolay",
    "SchemaTooNewError",
    "SchemaVersionError",
    "SpectralAxisError",
    "StoreClosedError",
    "StoreError",
    "UnknownSchemaError",
    "VerifyReport",
    "WorkspaceLockedError",
    "WorkspaceNotFoundError",
    "WorkspaceStore",
    "WriteBehindError",
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
