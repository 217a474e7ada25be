"""run(): cross-validated training sessions recorded through the public store API.

Real DuckDB (and one SQLite) workspaces in tmp_path, real scikit-learn estimators.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.cross_decomposition import PLSRegression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from nirs4all_store import WorkspaceStore
from nirs4all_store.workbench.bundle import predict as bundle_predict
from nirs4all_store.workbench.training.datasets import synthetic_nirs, write_nirs4all_folder
from nirs4all_store.workbench.training.session import RunResult, metric_ascending, run
from nirs4all_store.workbench.training.transforms import SNV

CV = 3


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@pytest.fixture(scope="module")
def reg_data() -> Any:
    return synthetic_nirs(60, 40, seed=1, test_fraction=0.25)


class Boom(RegressorMixin, BaseEstimator):
    """An estimator whose fit raises, to check that one pipeline fails alone."""

    def fit(self, X: Any, y: Any) -> Boom:
        raise ValueError("boom inside fit")

    def predict(self, X: Any) -> np.ndarray:  # pragma: no cover - never fitted
        return np.zeros(len(X))


def test_run_records_folds_avg_final_chain_and_logs(
    tmp_path: Path, reg_data: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    scaler, pls = MinMaxScaler(), PLSRegression(n_components=4)
    with run(
        [[scaler, pls], [StandardScaler(), SNV(), Ridge()]],
        reg_data,
        tmp_path / "ws",
        cv=CV,
        verbose=0,
    ) as result:
        store = result.store
        assert result.status == "completed" and len(result.pipeline_ids) == 2 and not result.failed
        assert not hasattr(scaler, "n_features_in_") and not hasattr(pls, "x_weights_")  # cloned
        out = capsys.readouterr()
        assert out.out == "" and out.err == ""

        run_row = store.get_run(result.run_id)
        assert run_row["status"] == "completed"
        assert run_row["datasets"][0]["hash"] == reg_data.content_hash

        pid = next(
            p for p in result.pipeline_ids if store.get_pipeline(p)["name"].startswith("0000")
        )
        preds = store.query_predictions(pipeline_id=pid).to_pylist()
        keys = sorted((p["fold_id"], p["partition"]) for p in preds)
        expected = sorted(
            [(f"fold_{k}", part) for k in range(CV) for part in ("train", "val", "test")]
            + [("avg", "val"), ("avg", "test"), ("fold_final", "train"), ("fold_final", "test")]
        )
        assert keys == expected
        for p in preds:  # each row carries the score of its own partition only
            own = {"train": "train_score", "val": "val_score", "test": "test_score"}[p["partition"]]
            assert p[own] is not None
            assert all(p[c] is None for c in ("train_score", "val_score", "test_score") if c != own)
            assert set(_json(p["scores"])[p["partition"]]) == {
                "rmse",
                "r2",
                "mae",
                "sep",
                "rpd",
                "rpiq",
                "bias",
                "slope",
            }
            assert p["metric"] == "rmse" and p["preprocessings"] == "MinMaxScaler"
            assert p["model_name"] == "PLSRegression(n_components=4)"

        # avg val = out-of-fold predictions: each training sample exactly once, the fold values.
        by_key = {(p["fold_id"], p["partition"]): p for p in preds}
        avg = store.get_prediction(by_key[("avg", "val")]["prediction_id"], load_arrays=True)
        assert sorted(avg["sample_indices"].tolist()) == list(range(len(reg_data.y_train)))
        oof = np.full(len(reg_data.y_train), np.nan)
        for k in range(CV):
            fold = store.get_prediction(
                by_key[(f"fold_{k}", "val")]["prediction_id"], load_arrays=True
            )
            oof[fold["sample_indices"]] = fold["y_pred"]
        np.testing.assert_allclose(avg["y_pred"][np.argsort(avg["sample_indices"])], oof)
        rmse = float(np.sqrt(np.mean((oof - reg_data.y_train) ** 2)))
        assert by_key[("avg", "val")]["val_score"] == pytest.approx(rmse)
        assert store.get_pipeline(pid)["best_val"] == pytest.approx(rmse)

        chain = store.get_chain(by_key[("avg", "val")]["chain_id"])
        assert [s["operator_class"] for s in chain["steps"]] == [
            "sklearn.preprocessing._data.MinMaxScaler",
            "sklearn.cross_decomposition._pls.PLSRegression",
        ]
        assert chain["steps"][1]["params"]["n_components"] == 4
        assert chain["model_step_idx"] == 1 and chain["fold_strategy"] == "per_fold"
        assert sorted(chain["fold_artifacts"]) == ["fold_0", "fold_1", "fold_2", "fold_final"]
        assert not chain["shared_artifacts"]  # each fold's artifact is its whole Pipeline
        assert chain["task_type"] == "regression" and chain["preprocessings"] == "MinMaxScaler"

        log = store.get_pipeline_log(pid).to_pylist()
        assert sorted(r["message"] for r in log) == [
            "fold 0",
            "fold 1",
            "fold 2",
            "fold_final",
        ]
        assert all(r["duration_ms"] >= 0 for r in log)

        # predict() replays the refit (fold_final) chain: same numbers as sklearn itself.
        best = result.best
        assert best["fold_id"] == "avg" and best["partition"] == "val"
        best_chain = store.get_chain(best["chain_id"])
        steps = (
            [MinMaxScaler(), PLSRegression(n_components=4)]
            if best_chain["model_class"].endswith("PLSRegression")
            else [StandardScaler(), SNV(), Ridge()]
        )
        reference = make_pipeline(*[clone(s) for s in steps]).fit(
            reg_data.X_train, reg_data.y_train
        )
        y_hat = result.predict(reg_data.X_test)
        np.testing.assert_allclose(
            y_hat.ravel(), np.ravel(reference.predict(reg_data.X_test)), rtol=1e-9, atol=1e-9
        )
        bundle = result.export(tmp_path / "best.n4a")
        np.testing.assert_allclose(bundle_predict(bundle, reg_data.X_test), y_hat)
        assert store.verify().ok


def test_verbose_shows_progress_and_leaderboard(
    tmp_path: Path, reg_data: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with run([MinMaxScaler(), PLSRegression(3)], reg_data, tmp_path / "ws", cv=CV, verbose=1):
        pass
    out = capsys.readouterr()
    assert (
        "rank" in out.out and "PLSRegression(n_components=3)" in out.out and "val rmse" in out.out
    )
    assert f"{CV + 1}/{CV + 1} [" in out.err and "fit/s" in out.err  # tqdm: count, rate


@pytest.mark.parametrize(("header", "compress"), [(True, False), (False, False), (True, True)])
def test_run_on_nirs4all_folder(
    tmp_path: Path, reg_data: Any, header: bool, compress: bool
) -> None:
    folder = write_nirs4all_folder(reg_data, tmp_path / "wheat", header=header, compress=compress)
    with run([StandardScaler(), Ridge()], str(folder), tmp_path / "ws", cv=CV, verbose=0) as result:
        (pipeline,) = result.store.list_pipelines(run_id=result.run_id).to_pylist()
        assert pipeline["status"] == "completed"
        assert pipeline["dataset_name"] == "wheat"
        assert pipeline["dataset_hash"] == reg_data.content_hash
        assert result.best["dataset_name"] == "wheat"
        assert result.top(5, partition="test").num_rows == 1


def test_failing_pipeline_fails_alone(tmp_path: Path, reg_data: Any) -> None:
    with run(
        [[MinMaxScaler(), PLSRegression(2)], [MinMaxScaler(), Boom()]],
        reg_data,
        tmp_path / "ws",
        cv=CV,
        verbose=0,
    ) as result:
        store = result.store
        assert result.status == "completed" and len(result.failed) == 1
        pipes = {p["name"]: p for p in store.list_pipelines(run_id=result.run_id).to_pylist()}
        failed = next(p for n, p in pipes.items() if "Boom" in n)
        assert failed["status"] == "failed"
        assert "boom inside fit" in failed["error"] and "Traceback" in failed["error"]
        assert store.query_predictions(pipeline_id=failed["pipeline_id"]).num_rows == 0
        assert store.get_run(result.run_id)["status"] == "completed"
        assert store.get_run(result.run_id)["summary"]["failed"] == 1
        assert result.top(10).num_rows == 1
        assert store.verify().ok


def test_run_failed_when_every_pipeline_fails(
    tmp_path: Path, reg_data: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with run([StandardScaler(), Boom()], reg_data, tmp_path / "ws", cv=CV, verbose=1) as result:
        assert result.status == "failed"
        row = result.store.get_run(result.run_id)
        assert row["status"] == "failed" and "boom inside fit" in row["error"]
        with pytest.raises(LookupError, match="no completed pipeline"):
            _ = result.best
    err = capsys.readouterr().err
    assert "failed: ValueError: boom inside fit" in err


def test_classification_run(tmp_path: Path) -> None:
    data = synthetic_nirs(90, 40, task="classification", seed=3, test_fraction=0.2)
    pipelines = [
        [StandardScaler(), LogisticRegression(max_iter=2000)],
        [SNV(), LogisticRegression(C=0.01, max_iter=2000)],
    ]
    with run(pipelines, data, tmp_path / "ws", cv=CV, verbose=0) as result:
        assert (
            result.metric == "balanced_accuracy" and metric_ascending("balanced_accuracy") is False
        )
        top = result.top(5).to_pylist()
        assert len(top) == 2 and top[0]["val_score"] >= top[1]["val_score"]  # higher is better
        assert result.best["task_type"] == "classification"
        pred = result.store.get_prediction(top[0]["prediction_id"], load_arrays=True)
        assert pred["y_proba"].shape == (len(data.y_train), 3)
        np.testing.assert_allclose(pred["y_proba"].sum(axis=1), 1.0)
        val_scores = _json(pred["scores"])["val"]
        assert set(val_scores) == {
            "accuracy",
            "balanced_accuracy",
            "f1",
            "confusion_matrix",
            "labels",
        }
        assert np.sum(val_scores["confusion_matrix"]) == len(data.y_train)
        labels = result.predict(data.X_test)
        assert set(np.unique(labels)) <= {0.0, 1.0, 2.0}
        chain = result.store.get_chain(top[0]["chain_id"])
        assert chain["task_type"] == "classification"


def test_run_on_sqlite_and_on_a_list_of_tuples(tmp_path: Path, reg_data: Any) -> None:
    other = synthetic_nirs(40, 40, seed=5)
    store = WorkspaceStore(tmp_path / "ws", url=f"sqlite:///{tmp_path / 'store.sqlite'}")
    with store:
        data = [(reg_data.X_train, reg_data.y_train), (other.X_train, other.y_train)]
        result = run([MinMaxScaler(), PLSRegression(2)], data, store, cv=CV, verbose=0, name="two")
        assert isinstance(result, RunResult) and not result.owns_store
        names = sorted(
            p["dataset_name"] for p in store.list_pipelines(run_id=result.run_id).to_pylist()
        )
        assert names == ["dataset_1", "dataset_2"]
        assert result.top(5).num_rows == 2
        again = run([MinMaxScaler(), PLSRegression(2)], data[:1], store, cv=CV, verbose=0)
        assert result.top(5).num_rows == 2  # each run's leaderboard holds its own pipelines
        assert set(again.top(5).column("pipeline_id").to_pylist()) == set(again.pipeline_ids)
        assert again.top(5).num_rows == 1
        result.close()  # does not close a store it was handed
        assert store.get_run(result.run_id)["name"] == "two"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"pipeline": [MinMaxScaler()]}, TypeError, "not a scikit-learn estimator"),
        (
            {"pipeline": ["MinMaxScaler", Ridge()]},
            TypeError,
            "step 0 .* not a scikit-learn transformer",
        ),
        ({"pipeline": []}, TypeError, "non-empty list"),
        ({"cv": 1}, ValueError, "cv must be an int >= 2"),
        ({"metric": "accuracy"}, ValueError, "classification metric"),
        ({"metric": "f2"}, ValueError, "unknown metric 'f2'"),
        ({"metric": "bias"}, ValueError, "ideal value, not a direction"),
        ({"cv": "5"}, ValueError, "cv must be an int >= 2, a scikit-learn splitter"),
        ({"n_jobs": 0}, ValueError, "n_jobs must be None"),
        ({"groups": [1, 2]}, ValueError, "groups must be 1-D with one value per training"),
        ({"cv": 100}, ValueError, "only 45 training samples"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(
    tmp_path: Path, reg_data: Any, kwargs: dict[str, Any], error: type, match: str
) -> None:
    args = {
        "pipeline": [MinMaxScaler(), Ridge()],
        "dataset": reg_data,
        "workspace": tmp_path / "ws",
        "verbose": 0,
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        run(**args)
    assert not (tmp_path / "ws").exists()


def test_snv_centres_and_scales_each_spectrum() -> None:
    X = np.array([[1.0, 2.0, 3.0, 6.0], [5.0, 5.0, 5.0, 5.0]])
    out = SNV().fit(X).transform(X)
    np.testing.assert_allclose(out[0].mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(out[0].std(), 1.0)
    np.testing.assert_array_equal(out[1], 0.0)  # flat spectrum: centred, no NaN
    assert clone(SNV(with_std=False)).get_params() == {"with_std": False}
    with pytest.raises(ValueError, match="fitted on 4 features"):
        SNV().fit(X).transform(X[:, :3])
