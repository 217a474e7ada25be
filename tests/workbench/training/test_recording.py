"""How run() records: groups of pipelines per transaction, failures that stay with one
pipeline, and an interrupted run that keeps what it fitted.

Real DuckDB workspaces in tmp_path, real scikit-learn estimators, no mocks.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.cross_decomposition import PLSRegression
from sklearn.linear_model import Ridge
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from nirs4all_store import WorkspaceStore
from nirs4all_store.workbench.training.datasets import synthetic_nirs
from nirs4all_store.workbench.training.recording import FittedPipeline, Recorder
from nirs4all_store.workbench.training.session import run

CV = 3


@pytest.fixture(scope="module")
def data() -> Any:
    return synthetic_nirs(50, 30, seed=2, test_fraction=0.2)


class Unpicklable(RegressorMixin, BaseEstimator):
    """Fits and predicts, but its fitted state holds a lock: it cannot be stored."""

    def fit(self, X: Any, y: Any) -> Unpicklable:
        self.mean_ = float(np.mean(y))
        self.lock_ = threading.Lock()
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.full(len(X), self.mean_)


class StopAfterFits(RegressorMixin, BaseEstimator):
    """Raises KeyboardInterrupt in fit: a user pressing Ctrl-C mid-run."""

    def fit(self, X: Any, y: Any) -> StopAfterFits:
        raise KeyboardInterrupt

    def predict(self, X: Any) -> np.ndarray:  # pragma: no cover - never fitted
        return np.zeros(len(X))


PIPELINES = [
    [MinMaxScaler(), PLSRegression(2)],
    [StandardScaler(), Ridge(alpha=1.0)],
    [PLSRegression(3)],
]


def _snapshot(store: WorkspaceStore, run_id: str) -> dict[str, Any]:
    pipelines = store.list_pipelines(run_id=run_id).to_pylist()
    predictions = store.query_predictions(run_id=run_id)
    return {
        "pipelines": sorted((p["name"], p["status"], p["best_val"]) for p in pipelines),
        "predictions": sorted(
            zip(
                predictions.column("fold_id").to_pylist(),
                predictions.column("partition").to_pylist(),
                predictions.column("model_name").to_pylist(),
                predictions.column("val_score").to_pylist(),
                strict=True,
            ),
            key=repr,
        ),
        "chains": sum(store.get_chains_for_pipeline(p["pipeline_id"]).num_rows for p in pipelines),
        "logs": sum(store.get_pipeline_log(p["pipeline_id"]).num_rows for p in pipelines),
    }


def test_one_commit_per_group_records_what_one_per_pipeline_does(tmp_path: Path, data: Any) -> None:
    with run(PIPELINES, data, tmp_path / "grouped", cv=CV, verbose=0) as grouped:
        assert grouped.timings["commits"] == 1
        expected = _snapshot(grouped.store, grouped.run_id)
        assert grouped.store.verify().ok
    with run(PIPELINES, data, tmp_path / "single", cv=CV, verbose=0, commit_every=0) as single:
        assert single.timings["commits"] == len(PIPELINES)
        assert _snapshot(single.store, single.run_id) == expected
        assert single.store.verify().ok
    assert len(expected["pipelines"]) == 3 and expected["chains"] == 3
    assert len(expected["predictions"]) == 3 * (
        CV * 3 + 4
    )  # folds x (train, val, test) + avg/final


def test_a_pipeline_that_cannot_be_stored_fails_alone(tmp_path: Path, data: Any) -> None:
    with run(
        [*PIPELINES, [MinMaxScaler(), Unpicklable()]], data, tmp_path / "ws", cv=CV, verbose=0
    ) as result:
        store = result.store
        assert result.status == "completed" and len(result.failed) == 1
        [why] = result.failed.values()
        assert "pickle" in why
        rows = {p["name"]: p for p in store.list_pipelines(run_id=result.run_id).to_pylist()}
        bad = next(p for name, p in rows.items() if "Unpicklable" in name)
        assert bad["status"] == "failed" and "pickle" in bad["error"]
        assert store.query_predictions(pipeline_id=bad["pipeline_id"]).num_rows == 0
        assert sum(p["status"] == "completed" for p in rows.values()) == 3
        assert store.verify().ok


def test_interrupted_run_keeps_the_pipelines_fitted_before(tmp_path: Path, data: Any) -> None:
    workspace = tmp_path / "ws"
    with pytest.raises(KeyboardInterrupt):
        run([*PIPELINES[:2], [StopAfterFits()], PIPELINES[2]], data, workspace, verbose=0)
    with WorkspaceStore(workspace) as store:
        [run_row] = store.list_runs().to_pylist()
        assert run_row["status"] == "failed" and "interrupted" in run_row["error"]
        pipelines = store.list_pipelines(run_id=run_row["run_id"]).to_pylist()
        assert sorted(p["status"] for p in pipelines) == ["completed", "completed"]
        assert store.query_predictions(run_id=run_row["run_id"]).num_rows > 0
        assert store.verify().ok


def _fitted(store: WorkspaceStore, run_id: str, name: str, partition: str) -> FittedPipeline:
    model = Ridge().fit(np.arange(12.0).reshape(6, 2), np.arange(6.0))
    item = FittedPipeline(
        pipeline_id=f"{name}-id",
        label=name,
        begin={"run_id": run_id, "name": name, "pipeline_id": f"{name}-id"},
        objects=[("fold_0", model, "Ridge", "model")],
        chain={"steps": [{"class": "Ridge"}], "model_step_idx": 0, "model_class": "Ridge"},
        predictions=[
            {
                "dataset_name": "d",
                "model_name": "Ridge",
                "model_class": "Ridge",
                "fold_id": "fold_0",
                "partition": partition,
                "metric": "rmse",
                "task_type": "regression",
                "val_score": 0.5,
                "y_true": np.arange(3.0),
                "y_pred": np.arange(3.0),
            }
        ],
        logs=[{"step_idx": 0, "event": "end", "duration_ms": 1.0}],
        completion={"best_val": 0.5, "metric": "rmse"},
    )
    return item


def test_a_group_that_fails_to_commit_is_recorded_pipeline_by_pipeline(tmp_path: Path) -> None:
    """The bad record only shows when the group commits (save_predictions refuses it): the
    group rolls back, then each pipeline commits alone and only the bad one fails."""
    with WorkspaceStore(tmp_path / "ws") as store:
        run_id = store.begin_run("r")
        failed: dict[str, str] = {}
        recorder = Recorder(
            store, commit_every=60, on_failed=lambda item, why: failed.update({item.label: why})
        )
        for name, partition in (("a", "val"), ("bad", "holdout"), ("c", "val")):
            recorder.add(_fitted(store, run_id, name, partition))
        assert recorder.commits == 0 and len(recorder.pending) == 3
        recorder.flush()
        assert recorder.commits == 3 and recorder.pending == []
        assert list(failed) == ["bad"] and "partition must be one of" in failed["bad"]
        rows = {p["name"]: p for p in store.list_pipelines(run_id=run_id).to_pylist()}
        assert {n: p["status"] for n, p in rows.items()} == {
            "a": "completed",
            "bad": "failed",
            "c": "completed",
        }
        assert "partition must be one of" in rows["bad"]["error"]
        assert store.query_predictions(run_id=run_id).num_rows == 2
        assert store.verify().ok  # the three identical models share one file and row


@pytest.mark.parametrize("bad", [-1, float("nan"), "10", True])
def test_commit_every_is_checked(tmp_path: Path, data: Any, bad: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="commit_every"):
        run(PIPELINES[:1], data, tmp_path / "ws", verbose=0, commit_every=bad)
