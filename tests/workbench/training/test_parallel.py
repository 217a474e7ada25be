"""Parallel fits: several fits per joblib task, scored in the worker, recorded by the parent.

Real scikit-learn, real loky worker processes, real DuckDB workspaces in tmp_path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.cross_decomposition import PLSRegression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from nirs4all_store import WorkspaceStore
from nirs4all_store.workbench.training.datasets import synthetic_nirs
from nirs4all_store.workbench.training.metrics import scores
from nirs4all_store.workbench.training.parallel import CHUNKS_PER_WORKER, chunk_size, fit_chunk
from nirs4all_store.workbench.training.session import run
from nirs4all_store.workbench.training.transforms import MSC, SNV


class NaNRegressor(RegressorMixin, BaseEstimator):
    """Fits, then predicts NaN: a model whose scores cannot be computed."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> NaNRegressor:
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), np.nan)


def test_chunk_size() -> None:
    assert chunk_size(120, 1, 6) == 6  # one process: one pipeline's fits per task
    assert chunk_size(120, 2, 6) == 6  # never more than one pipeline's fits
    assert chunk_size(12, 2, 6) == 2  # few fits: about CHUNKS_PER_WORKER tasks per worker
    assert chunk_size(3, 4, 6) == 1
    n_tasks = -(-40 // chunk_size(40, 2, 40))
    assert CHUNKS_PER_WORKER * 2 <= n_tasks <= CHUNKS_PER_WORKER * 2 + 1


def _stored(store: WorkspaceStore, run_id: str) -> list[tuple[Any, ...]]:
    rows = []
    for p in store.list_pipelines(run_id=run_id).to_pylist():
        for r in store.query_predictions(pipeline_id=p["pipeline_id"]).to_pylist():
            full = store.get_prediction(r["prediction_id"], load_arrays=True)
            assert full is not None
            stored = full["scores"]
            stored = json.loads(stored) if isinstance(stored, str) else stored
            key = (p["name"], r["fold_id"], r["partition"])
            rows.append((*key, json.dumps(stored, sort_keys=True), full["y_pred"].tobytes()))
            # the scores the worker computed are those of the stored arrays
            expected = scores(r["task_type"], np.asarray(full["y_true"]), full["y_pred"])
            assert stored[r["partition"]] == expected
    return sorted(rows)


def test_chunks_that_straddle_pipelines_record_what_n_jobs_1_does(tmp_path: Path) -> None:
    # cv=4: 5 fits per pipeline; 15 fits on 2 workers -> tasks of 2 fits, across pipelines,
    # and the pipeline whose predictions cannot be scored shares a task with the others.
    ds = synthetic_nirs(40, 30, seed=3, test_fraction=0.25)
    pipelines = [[SNV(), PLSRegression(2)], [MSC(), NaNRegressor()], [StandardScaler(), Ridge()]]
    assert chunk_size(15, 2, 5) == 2
    with WorkspaceStore(tmp_path / "ws") as store:
        runs = []
        for n_jobs in (1, 2):
            result = run(pipelines, ds, store, cv=4, n_jobs=n_jobs, verbose=0)
            assert result.status == "completed"
            (why,) = result.failed.values()
            assert "Input contains NaN" in why and "fitting fold_0" in why
            runs.append(_stored(store, result.run_id))
        assert runs[0] == runs[1] and len(runs[0]) == 2 * (4 * 3 + 4)


def test_classification_in_parallel_records_what_n_jobs_1_does(tmp_path: Path) -> None:
    ds = synthetic_nirs(48, 20, task="classification", seed=5, test_fraction=0.25)
    pipelines = [[SNV(), LogisticRegression(max_iter=500)]]
    with WorkspaceStore(tmp_path / "ws") as store:
        runs = []
        for n_jobs in (1, 2):
            result = run(pipelines, ds, store, cv=3, n_jobs=n_jobs, verbose=0)
            assert result.status == "completed" and not result.failed
            runs.append(_stored(store, result.run_id))
        assert runs[0] == runs[1] and len(runs[0]) == 3 * 3 + 4


def _freeze_count_after_two_chunks() -> int:
    import gc

    fit_chunk([])
    fit_chunk([])
    return gc.get_freeze_count()


def test_loky_workers_freeze_their_heap_and_the_caller_does_not() -> None:
    import gc

    from joblib import Parallel, delayed

    counts = Parallel(n_jobs=2)(delayed(_freeze_count_after_two_chunks)() for _ in range(2))
    assert all(count > 10_000 for count in counts)  # the worker's modules, classes, ...
    before = gc.get_freeze_count()
    assert _freeze_count_after_two_chunks() == before  # n_jobs=1: the caller's heap untouched
