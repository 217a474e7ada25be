"""Training on scikit-learn, recorded into a workspace: `run()`, datasets and results.

Names load on first use (module-level `__getattr__`), so importing a numpy-only module such
as `nirs4all_store.workbench.training.datasets` does not pay for scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> module (under this package) that defines it.
_LAZY = {
    "run": "session",
    "RunResult": "result",
    "leaderboard_rows": "result",
    "print_leaderboard": "result",
    "SCORE_COLUMN": "metrics",
    "DEFAULT_METRIC": "metrics",
    "metric_ascending": "metrics",
    "Dataset": "datasets",
    "load_nirs4all_folder": "datasets",
    "synthetic_nirs": "datasets",
    "DatasetError": "dataset_files",
    "parse_spectra_table": "dataset_files",
    "SNV": "transforms",
    "MSC": "transforms",
    "SavitzkyGolay": "transforms",
    "Detrend": "transforms",
    "ALSBaseline": "transforms",
    "Grid": "grid",
    "parse_cv": "splitting",
}

if TYPE_CHECKING:
    from nirs4all_store.workbench.training.dataset_files import DatasetError, parse_spectra_table
    from nirs4all_store.workbench.training.datasets import (
        Dataset,
        load_nirs4all_folder,
        synthetic_nirs,
    )
    from nirs4all_store.workbench.training.grid import Grid
    from nirs4all_store.workbench.training.metrics import (
        DEFAULT_METRIC,
        SCORE_COLUMN,
        metric_ascending,
    )
    from nirs4all_store.workbench.training.result import (
        RunResult,
        leaderboard_rows,
        print_leaderboard,
    )
    from nirs4all_store.workbench.training.session import run
    from nirs4all_store.workbench.training.splitting import parse_cv
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
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "DEFAULT_METRIC",
    "MSC",
    "SCORE_COLUMN",
    "SNV",
    "ALSBaseline",
    "Dataset",
    "DatasetError",
    "Detrend",
    "Grid",
    "RunResult",
    "SavitzkyGolay",
    "leaderboard_rows",
    "load_nirs4all_folder",
    "metric_ascending",
    "parse_cv",
    "parse_spectra_table",
    "print_leaderboard",
    "run",
    "synthetic_nirs",
]
