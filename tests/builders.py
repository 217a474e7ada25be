"""Builders shared by the replay, bundle and export tests: chains of real scikit-learn
objects, and the legacy nirs4all fixture workspace opened as a store."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from nirs4all_store import WorkspaceStore

N_FEATURES = 40
LEGACY_ARCHIVES = (
    Path(__file__).resolve().parent / "fixtures" / "nirs4all_v4_workspace.tar.gz",
    Path("/work/shared/fixtures/nirs4all_v4_workspace.tar.gz"),
)


class WavelengthShift(BaseEstimator, TransformerMixin):
    """A transformer whose transform takes wavelengths (as nirs4all operators may)."""

    def fit(self, X: Any, y: Any = None) -> WavelengthShift:
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X: Any, wavelengths: Any = None) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        return X if wavelengths is None else X + np.asarray(wavelengths) / 1000.0


def spectra(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES)).cumsum(axis=1)
    y = X[:, 5] - 0.5 * X[:, 20] + rng.normal(scale=0.1, size=n)
    return X, y


def new_pipeline(store: WorkspaceStore) -> str:
    run_id = store.begin_run("replay")
    return store.begin_pipeline(run_id, "p", expanded_config={"steps": []}, dataset_name="wheat")


def save_chain(
    store: WorkspaceStore,
    shared: dict[str, Any],
    folds: dict[str, Any],
    *,
    model_step_idx: int = 1,
    steps: list[Any] | None = None,
    task_type: str | None = "regression",
) -> str:
    """Save the objects as artifacts and a chain naming them; returns the chain id."""

    def ids(value: Any) -> Any:
        if isinstance(value, list):
            return [store.save_artifact(v) for v in value]
        return store.save_artifact(value)

    return store.save_chain(
        new_pipeline(store),
        steps if steps is not None else [{"step_idx": i} for i in range(model_step_idx + 1)],
        model_step_idx,
        "Model",
        fold_artifacts={k: ids(v) for k, v in folds.items()},
        shared_artifacts={k: ids(v) for k, v in shared.items()},
        task_type=task_type,
    )


def fold_ridges(Xt: np.ndarray, y: np.ndarray, n_folds: int = 3) -> list[Ridge]:
    return [
        Ridge(alpha=10.0**k).fit(Xt[i::n_folds], y[i::n_folds])
        for k, i in enumerate(range(n_folds))
    ]


def regression_setup(store: WorkspaceStore) -> tuple[str, str, str]:
    """A run, a pipeline and a StandardScaler + 3 Ridge folds chain: (run, pipeline, chain)."""
    X, y = spectra()
    scaler = StandardScaler().fit(X)
    models = fold_ridges(scaler.transform(X), y)
    run_id = store.begin_run("regression")
    pipeline_id = store.begin_pipeline(
        run_id,
        "std+ridge",
        expanded_config={"steps": ["StandardScaler", {"model": "Ridge"}]},
        dataset_name="wheat",
    )
    chain_id = store.save_chain(
        pipeline_id,
        [
            {"step_idx": 0, "operator_class": "StandardScaler"},
            {"step_idx": 1, "operator_class": "Ridge"},
        ],
        1,
        "Ridge",
        preprocessings="StandardScaler",
        fold_artifacts={f"fold_{i}": store.save_artifact(m) for i, m in enumerate(models)},
        shared_artifacts={"0": [store.save_artifact(scaler)]},
        task_type="regression",
    )
    return run_id, pipeline_id, chain_id


def unpack_legacy(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    archive = next((p for p in LEGACY_ARCHIVES if p.is_file()), None)
    if archive is None:
        pytest.skip("legacy nirs4all fixture archive not available")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    expected = json.loads((tmp_path / "nirs4all_v4_workspace.expected.json").read_text())
    return tmp_path / "nirs4all_v4_workspace", expected
