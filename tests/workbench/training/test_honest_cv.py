"""Honest cross-validation: every fold fits the whole pipeline on its own training part.

Out-of-fold predictions are compared with scikit-learn's own `cross_val_predict` of the same
`Pipeline` and splitter; pure noise with a supervised selector must not look learnable.
Real scikit-learn objects, real workspaces (DuckDB in tmp_path; the `store` fixture runs one
test on every backend).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.cross_decomposition import PLSRegression
from sklearn.feature_selection import SelectKBest, f_regression
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    LeaveOneGroupOut,
    RepeatedKFold,
    StratifiedKFold,
    cross_val_predict,
    cross_val_score,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nirs4all_store import WorkspaceStore
from nirs4all_store.workbench.replay import replay_steps
from nirs4all_store.workbench.training.datasets import Dataset, synthetic_nirs
from nirs4all_store.workbench.training.grid import Grid
from nirs4all_store.workbench.training.session import run
from nirs4all_store.workbench.training.transforms import MSC, SNV


def _preds(store: WorkspaceStore, run_id: str, **filters: Any) -> list[dict[str, Any]]:
    return store.query_predictions(run_id=run_id, **filters).to_pylist()


def _arrays(store: WorkspaceStore, prediction_id: str) -> dict[str, Any]:
    row = store.get_prediction(prediction_id, load_arrays=True)
    assert row is not None
    return row


def _oof(result: Any) -> tuple[np.ndarray, np.ndarray]:
    (row,) = _preds(result.store, result.run_id, fold_id="avg", partition="val")
    full = _arrays(result.store, row["prediction_id"])
    return np.asarray(full["sample_indices"]), np.asarray(full["y_pred"])


def test_pure_noise_with_a_supervised_selector_is_not_learnable(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(100, 2000)), rng.normal(size=100)
    steps = [SelectKBest(f_regression, k=10), LinearRegression()]
    splitter = KFold(5, shuffle=True, random_state=0)
    # The leak run() had: the selector fitted on all training data before the folds.
    selected = clone(steps[0]).fit_transform(X, y)
    leaky = cross_val_score(LinearRegression(), selected, y, cv=splitter, scoring="r2").mean()
    assert leaky > 0.3  # the optimistic figure this test must not reproduce
    with run(steps, (X, y), tmp_path / "ws", cv=splitter, metric="r2", verbose=0) as result:
        (row,) = _preds(result.store, result.run_id, fold_id="avg", partition="val")
        r2 = row["val_score"]
    assert r2 < 0.1, f"CV R2 {r2} on pure noise: preprocessing leaks into the folds"


@pytest.fixture(scope="module")
def grouped() -> Dataset:
    """Replicate scans: 3 per sample, the sample id a metadata column."""
    base = synthetic_nirs(30, 60, seed=3)
    rng = np.random.default_rng(1)
    X = np.repeat(base.X_train, 3, axis=0) + rng.normal(0, 0.002, size=(90, 60))
    y = np.repeat(base.y_train, 3)
    sample = np.repeat(np.arange(30), 3)
    return Dataset("replicates", X, y, metadata={"sample": sample}, wavelengths=base.wavelengths)


@pytest.mark.parametrize(
    "cv, uses_groups",
    [
        (KFold(4, shuffle=True, random_state=2), False),
        (GroupKFold(5), True),
        (LeaveOneGroupOut(), True),
    ],
    ids=["kfold", "group-kfold", "logo"],
)
def test_out_of_fold_predictions_equal_cross_val_predict(
    tmp_path: Path, grouped: Dataset, cv: Any, uses_groups: bool
) -> None:
    steps = [SNV(), SelectKBest(f_regression, k=20), PLSRegression(3)]
    groups = grouped.metadata["sample"] if uses_groups else None  # type: ignore[index]
    if isinstance(cv, LeaveOneGroupOut):  # 30 folds is a lot: 6 groups of 5 samples
        groups = groups // 5  # type: ignore[operator]
    expected = cross_val_predict(
        make_pipeline(*[clone(s) for s in steps]),
        grouped.X_train,
        grouped.y_train,
        cv=cv,
        groups=groups,
    ).ravel()
    with run(steps, grouped, tmp_path / "ws", cv=cv, groups=groups, verbose=0) as result:
        idx, oof = _oof(result)
        config = result.store.get_run(result.run_id)["config"]  # type: ignore[index]
    assert np.array_equal(idx, np.arange(len(grouped.y_train)))
    np.testing.assert_allclose(oof, expected, rtol=0, atol=1e-9)
    assert type(cv).__name__ in config["splitting"]["splitter"]


def test_default_int_cv_with_groups_column_is_group_kfold(tmp_path: Path, grouped: Dataset) -> None:
    steps = [StandardScaler(), Ridge(alpha=1.0)]
    groups = grouped.metadata["sample"]  # type: ignore[index]
    expected = cross_val_predict(
        make_pipeline(*steps), grouped.X_train, grouped.y_train, cv=GroupKFold(5), groups=groups
    )
    with run(steps, grouped, tmp_path / "ws", cv=5, groups="sample", verbose=0) as result:
        _, oof = _oof(result)
        store = result.store
        # no sample's replicate scans straddle a fold's train and val parts
        for row in _preds(store, result.run_id, partition="val"):
            if row["fold_id"].startswith("fold_"):
                va = np.asarray(_arrays(store, row["prediction_id"])["sample_indices"])
                tr = np.setdiff1d(np.arange(90), va)
                assert not set(groups[va]) & set(groups[tr])
    np.testing.assert_allclose(oof, expected, rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match=r"groups=.batch.*no metadata column"):
        run(steps, grouped, tmp_path / "ws2", groups="batch", verbose=0)


def test_classification_and_explicit_splits(tmp_path: Path) -> None:
    ds = synthetic_nirs(60, 30, task="classification", seed=4)
    steps = [MSC(), StandardScaler(), LogisticRegression(max_iter=500)]
    cv = StratifiedKFold(3, shuffle=True, random_state=5)
    splits = list(cv.split(ds.X_train, ds.y_train))
    expected = cross_val_predict(make_pipeline(*steps), ds.X_train, ds.y_train, cv=cv)
    for given in (cv, iter(splits)):
        with run(steps, ds, tmp_path / f"ws{id(given)}", cv=given, verbose=0) as result:
            _, oof = _oof(result)
        np.testing.assert_array_equal(oof, expected)


def test_repeated_cv_averages_the_repeats(tmp_path: Path) -> None:
    ds = synthetic_nirs(40, 30, seed=6)
    steps = [SNV(), PLSRegression(3)]
    cv = RepeatedKFold(n_splits=4, n_repeats=2, random_state=0)
    sums, counts = np.zeros(40), np.zeros(40)
    for tr, va in cv.split(ds.X_train):
        model = make_pipeline(*[clone(s) for s in steps]).fit(ds.X_train[tr], ds.y_train[tr])
        sums[va] += model.predict(ds.X_train[va]).ravel()
        counts[va] += 1
    with run(steps, ds, tmp_path / "ws", cv=cv, verbose=0) as result:
        _, oof = _oof(result)
        folds = {r["fold_id"] for r in _preds(result.store, result.run_id, partition="val")}
    assert folds == {f"fold_{k}" for k in range(8)} | {"avg"}
    np.testing.assert_allclose(oof, sums / counts, rtol=0, atol=1e-9)


def test_replaying_the_fold_ensemble_and_the_refit_is_exact(tmp_path: Path) -> None:
    ds = synthetic_nirs(50, 30, seed=7, test_fraction=0.2)
    steps = [SNV(), SelectKBest(f_regression, k=10), Ridge()]
    with run(steps, ds, tmp_path / "ws", cv=4, verbose=0) as result:
        store = result.store
        chain = store.get_chain(result.best["chain_id"])
        assert chain is not None and not chain["shared_artifacts"]
        assert sorted(chain["fold_artifacts"]) == [*(f"fold_{k}" for k in range(4)), "fold_final"]
        by_fold = {
            r["fold_id"]: _arrays(store, r["prediction_id"])["y_pred"]
            for r in _preds(store, result.run_id, partition="test")
        }
        ensemble = {**chain, "fold_artifacts": dict(chain["fold_artifacts"])}
        del ensemble["fold_artifacts"]["fold_final"]
        replayed = replay_steps(ensemble, store.load_artifact, ds.X_test)
        np.testing.assert_allclose(replayed, by_fold["avg"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(result.predict(ds.X_test), by_fold["fold_final"], atol=1e-12)
        refit = make_pipeline(*[clone(s) for s in steps]).fit(ds.X_train, ds.y_train)
        np.testing.assert_allclose(by_fold["fold_final"], refit.predict(ds.X_test), atol=1e-12)
        out = tmp_path / "best.n4a"
        result.export(out)
    from nirs4all_store.workbench.bundle import predict

    np.testing.assert_allclose(predict(out, ds.X_test), by_fold["fold_final"], atol=1e-12)


def _stored(store: WorkspaceStore, run_id: str) -> list[tuple[Any, ...]]:
    rows = []
    for p in store.list_pipelines(run_id=run_id).to_pylist():
        for r in store.query_predictions(pipeline_id=p["pipeline_id"]).to_pylist():
            full = _arrays(store, r["prediction_id"])
            rows.append(
                (
                    p["name"],
                    r["fold_id"],
                    r["partition"],
                    r["val_score"],
                    r["test_score"],
                    r["train_score"],
                    np.asarray(full["y_pred"]).tobytes(),
                    np.asarray(full["sample_indices"]).tobytes(),
                )
            )
    return sorted(rows)


def test_n_jobs_2_records_what_n_jobs_1_does(open_store: Any) -> None:
    ds = synthetic_nirs(40, 30, seed=8, test_fraction=0.25)
    pipelines = [[SNV(), PLSRegression(2)], [MSC(), Ridge()], [StandardScaler(), PLSRegression(4)]]
    store = open_store()
    runs = []
    for n_jobs in (1, 2):
        result = run(pipelines, ds, store, cv=3, n_jobs=n_jobs, verbose=0, name=f"jobs{n_jobs}")
        assert result.status == "completed"
        runs.append(_stored(store, result.run_id))
    assert runs[0] == runs[1] and len(runs[0]) == 3 * (3 * 3 + 4)


def test_grid_expands_and_records_its_choices(tmp_path: Path) -> None:
    ds = synthetic_nirs(30, 20, seed=9)
    grid = Grid(PLSRegression(), {"n_components": [2, 4], "scale": [True, False]})
    with run([SNV(), grid], ds, tmp_path / "ws", cv=3, verbose=0) as result:
        rows = result.store.list_pipelines(run_id=result.run_id).to_pylist()
    for r in rows:
        if isinstance(r["generator_choices"], str):
            r["generator_choices"] = json.loads(r["generator_choices"])
    assert len(rows) == 4
    choices = sorted(
        (c["params"]["n_components"], c["params"]["scale"])
        for r in rows
        for c in r["generator_choices"]
    )
    assert choices == [(2, False), (2, True), (4, False), (4, True)]
    assert {r["generator_choices"][0]["step_idx"] for r in rows} == {1}
    with pytest.raises(ValueError, match="unknown parameter"):
        Grid(PLSRegression(), {"n_comp": [2]})


def test_run_a_template_of_the_workspace_library(tmp_path: Path) -> None:
    from nirs4all_store import PipelineLibrary

    ds = synthetic_nirs(30, 20, seed=10)
    config = [["SNV", {"class": "PLSRegression", "grid": {"n_components": [2, 3]}}]]
    with PipelineLibrary(tmp_path / "ws") as lib:
        lib.save_template(config, "pls-baseline")
    with run("pls-baseline", ds, tmp_path / "ws", cv=3, verbose=0) as result:
        assert len(result.pipeline_ids) == 2 and result.status == "completed"
    with pytest.raises(KeyError, match="unknown pipeline template 'nope'"):
        run("nope", ds, tmp_path / "ws", verbose=0)


def test_the_wavelength_axis_travels_with_the_fitted_pipelines(tmp_path: Path) -> None:
    ds = synthetic_nirs(30, 20, seed=11, test_fraction=0.2)
    with run([SNV(), PLSRegression(2)], ds, tmp_path / "ws", cv=3, verbose=0) as result:
        store = result.store
        info = store.get_run(result.run_id)["datasets"][0]  # type: ignore[index]
        assert info["wavelengths"] == ds.wavelengths.tolist()  # type: ignore[union-attr]
        chain = store.get_chain(result.best["chain_id"])
        final = store.load_artifact(chain["fold_artifacts"]["fold_final"])  # type: ignore[index]
        np.testing.assert_array_equal(final.wavelengths_, ds.wavelengths)  # type: ignore[arg-type]
        out = result.export(tmp_path / "b.n4a")
    import pickle
    import zipfile

    with zipfile.ZipFile(out) as zf:  # the bundle carries the refit pipeline, axis included
        manifest = json.loads(zf.read("manifest.json"))
        (entry,) = manifest["artifacts"].values()
        model = pickle.loads(zf.read(entry["file"]))
    np.testing.assert_array_equal(model.wavelengths_, ds.wavelengths)  # type: ignore[arg-type]
