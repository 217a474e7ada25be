"""Workbench conveniences on the facade: thin delegates resolved through
`nirs4all_store.extensions` (the core never imports the workbench)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nirs4all_store.extensions import resolve
from nirs4all_store.facade.base import FacadeBase

EXPORTS_DIRNAME = "exports"


class WorkbenchCalls(FacadeBase):
    """Replay and exports, implemented in `nirs4all_store.workbench` (replay, bundle, exports)."""

    def replay_chain(
        self, chain_id: str, X: Any, wavelengths: Any = None, proba: bool = False
    ) -> Any:
        """Predict on new spectra with a stored chain (see `nirs4all_store.replay`)."""
        return resolve("replay_chain")(self, chain_id, X, wavelengths=wavelengths, proba=proba)

    def export_chain(
        self, chain_id: str, output_path: str | os.PathLike[str], format: str = "n4a"
    ) -> Path:
        """Write a portable `.n4a` bundle of a chain (see `nirs4all_store.bundle`)."""
        return resolve("export_chain")(self, chain_id, output_path, format=format)

    def export_predictions_parquet(
        self, output_path: str | os.PathLike[str], include_arrays: bool = False, **filters: Any
    ) -> Path:
        """Write the predictions matching `filters` to a Parquet file (see the workbench)."""
        return resolve("export_predictions_parquet")(
            self, output_path, include_arrays=include_arrays, **filters
        )

    def export_run(self, run_id: str, output_path: str | os.PathLike[str]) -> Path:
        """Write a run with its pipelines and chains as YAML; returns the path."""
        return resolve("export_run")(self, run_id, output_path)

    def export_pipeline_config(self, pipeline_id: str, output_path: str | os.PathLike[str]) -> Path:
        """Write a pipeline's expanded config as JSON; returns the path."""
        return resolve("export_pipeline_config")(self, pipeline_id, output_path)

    def exports_path(self) -> Path:
        """The workspace's `exports/` folder (created on first explicit export)."""
        if self.path is None:
            raise ValueError("this store has no workspace folder: give export paths explicitly")
        return self.path / EXPORTS_DIRNAME
