"""Chain replay with real scikit-learn objects on every backend (and the legacy fixture)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from builders import (
    N_FEATURES,
    WavelengthShift,
    fold_ridges,
    save_chain,
    spectra,
)
from sklearn.cross_decomposition import PLSRegression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from nirs4all_store import WorkspaceStore
from nirs4all_store.workbench.replay import replay_steps


def test_replay_equals_hand_computation_with_numpy(store: WorkspaceStore) -> None:
    X, y = spectra()
    scaler = StandardScaler().fit(X)
    models = fold_ridges(scaler.transform(X), y)
    chain_id = save_chain(store, {"0": scaler}, {f"fold_{i}": m for i, m in enumerate(models)})

    Xnew, _ = spectra(9, seed=1)
    Z = (Xnew - scaler.mean_) / scaler.scale_
    expected = np.mean([Z @ m.coef_ + m.intercept_ for m in models], axis=0)

    got = store.replay_chain(chain_id, Xnew)
    assert got.shape == (9,)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)


def test_final_fold_alone_predicts(store: WorkspaceStore) -> None:
    X, y = spectra()
    scaler = MinMaxScaler().fit(X)
    Xt = scaler.transform(X)
    final = PLSRegression(n_components=3).fit(Xt, y)
    decoy = Ridge().fit(Xt, -y)  # a per-fold model that must be ignored
    for final_key in ("fold_final", "final"):
        chain_id = save_chain(store, {"0": scaler}, {"fold_0": decoy, final_key: final})
        got = store.replay_chain(chain_id, X[:5])
        np.testing.assert_allclose(
            got, np.ravel(final.predict(scaler.transform(X[:5]))), atol=1e-12
        )


def test_list_of_shared_artifacts_applies_in_order_and_stateless_steps_pass(
    store: WorkspaceStore,
) -> None:
    X, y = spectra()
    first = MinMaxScaler().fit(X)
    second = StandardScaler().fit(first.transform(X))
    model = Ridge().fit(second.transform(first.transform(X)), y)
    steps = [
        {"step_idx": 0, "operator_class": "MinMax+Standard", "stateless": False},
        {"step_idx": 1, "operator_class": "Identity", "stateless": True},
        {"step_idx": 2, "operator_class": "Ridge", "stateless": False},
    ]
    chain_id = save_chain(
        store, {"0": [first, second]}, {"fold_0": model}, model_step_idx=2, steps=steps
    )
    expected = model.predict(second.transform(first.transform(X[:4])))
    np.testing.assert_allclose(store.replay_chain(chain_id, X[:4]), expected, atol=1e-12)


def test_sklearn_pipeline_object_as_one_artifact(store: WorkspaceStore) -> None:
    X, y = spectra()
    whole = Pipeline([("scale", StandardScaler()), ("ridge", Ridge(alpha=0.5))]).fit(X, y)
    chain_id = save_chain(store, {}, {"fold_final": whole}, model_step_idx=0)
    np.testing.assert_allclose(
        store.replay_chain(chain_id, X[:6]), whole.predict(X[:6]), atol=1e-12
    )

    pre = Pipeline([("minmax", MinMaxScaler()), ("std", StandardScaler())]).fit(X)
    model = Ridge().fit(pre.transform(X), y)
    chain_id = save_chain(store, {"0": pre}, {"fold_0": model})
    np.testing.assert_allclose(
        store.replay_chain(chain_id, X[:6]), model.predict(pre.transform(X[:6])), atol=1e-12
    )
    with pytest.raises(ValueError, match=r"X has 39 features but chain .* expects 40"):
        store.replay_chain(chain_id, X[:6, :-1])


def test_multi_output_stays_two_dimensional(store: WorkspaceStore) -> None:
    X, y = spectra()
    Y = np.column_stack([y, 2 * y])
    models = [Ridge().fit(X[i::2], Y[i::2]) for i in range(2)]
    chain_id = save_chain(store, {}, {"fold_0": models[0], "fold_1": models[1]}, model_step_idx=0)
    got = store.replay_chain(chain_id, X[:3])
    assert got.shape == (3, 2)
    np.testing.assert_allclose(
        got, (models[0].predict(X[:3]) + models[1].predict(X[:3])) / 2, atol=1e-12
    )


def test_classification_averages_probabilities(store: WorkspaceStore) -> None:
    X, y = spectra(90)
    labels = np.where(y > np.median(y), "high", "low")
    scaler = StandardScaler().fit(X)
    Xt = scaler.transform(X)
    models = [
        LogisticRegression(C=c, max_iter=2000).fit(Xt[i::3], labels[i::3])
        for i, c in enumerate((0.1, 1.0, 10.0))
    ]
    chain_id = save_chain(
        store,
        {"0": scaler},
        {f"fold_{i}": m for i, m in enumerate(models)},
        task_type="classification",
    )
    Xnew = X[:12]
    mean_proba = np.mean([m.predict_proba(scaler.transform(Xnew)) for m in models], axis=0)

    proba = store.replay_chain(chain_id, Xnew, proba=True)
    np.testing.assert_allclose(proba, mean_proba, atol=1e-12)
    assert proba.shape == (12, 2)
    got = store.replay_chain(chain_id, Xnew)
    assert got.tolist() == models[0].classes_[np.argmax(mean_proba, axis=1)].tolist()
    assert set(got) <= {"high", "low"}


def test_proba_on_a_regression_chain_is_refused(store: WorkspaceStore) -> None:
    X, y = spectra()
    chain_id = save_chain(store, {}, {"fold_0": Ridge().fit(X, y)}, model_step_idx=0)
    with pytest.raises(ValueError, match="proba=True needs a classification chain"):
        store.replay_chain(chain_id, X, proba=True)


def test_wavelengths_reach_transformers_that_accept_them(store: WorkspaceStore) -> None:
    X, y = spectra()
    shift = WavelengthShift().fit(X)
    model = Ridge().fit(X, y)
    chain_id = save_chain(store, {"0": shift}, {"fold_0": model})
    wl = np.linspace(1000, 2500, N_FEATURES)
    with_wl = store.replay_chain(chain_id, X[:3], wavelengths=wl)
    np.testing.assert_allclose(with_wl, model.predict(X[:3] + wl / 1000.0), atol=1e-12)
    np.testing.assert_allclose(
        store.replay_chain(chain_id, X[:3]), model.predict(X[:3]), atol=1e-12
    )
    with pytest.raises(ValueError, match="one value per feature"):
        store.replay_chain(chain_id, X[:3], wavelengths=wl[:-1])


def test_each_artifact_is_loaded_once_per_call(store: WorkspaceStore) -> None:
    X, y = spectra()
    scaler = StandardScaler().fit(X)
    same = Ridge().fit(scaler.transform(X), y)
    other = Ridge(alpha=5).fit(scaler.transform(X), y)
    # Identical bytes share one artifact id: folds 0 and 1 name the same artifact.
    chain_id = save_chain(store, {"0": scaler}, {"fold_0": same, "fold_1": same, "fold_2": other})
    chain = store.get_chain(chain_id)
    assert (
        chain is not None and chain["fold_artifacts"]["fold_0"] == chain["fold_artifacts"]["fold_1"]
    )
    loads: list[str] = []

    def load(artifact_id: str) -> Any:
        loads.append(artifact_id)
        return store.load_artifact(artifact_id)

    replay_steps(chain, load, X[:2])
    assert sorted(loads) == sorted(set(loads)) and len(loads) == 3


def test_errors_name_the_problem(store: WorkspaceStore) -> None:
    X, y = spectra()
    with pytest.raises(KeyError, match="unknown chain_id"):
        store.replay_chain("no-such-chain", X)
    empty = save_chain(store, {}, {}, model_step_idx=0)
    with pytest.raises(RuntimeError, match="no model artifacts"):
        store.replay_chain(empty, X)
    no_model = save_chain(store, {}, {"fold_0": Ridge().fit(X, y)}, model_step_idx=-1, steps=[])
    with pytest.raises(RuntimeError, match="no model step"):
        store.replay_chain(no_model, X)
    missing_state = save_chain(
        store,
        {},
        {"fold_0": Ridge().fit(X, y)},
        steps=[
            {"step_idx": 0, "operator_class": "StandardScaler", "stateless": False},
            {"step_idx": 1},
        ],
    )
    with pytest.raises(RuntimeError, match=r"step 0 \(StandardScaler\) is fitted"):
        store.replay_chain(missing_state, X)
    ok = save_chain(store, {}, {"fold_0": Ridge().fit(X, y)}, model_step_idx=0)
    with pytest.raises(ValueError, match="X must be 2-D"):
        store.replay_chain(ok, X[0])
    with pytest.raises(ValueError, match=r"X has 41 features but chain .* expects 40"):
        store.replay_chain(ok, np.hstack([X, X[:, :1]]))


def test_legacy_workspace_replays_its_expected_values(
    legacy_store: Callable[[], tuple[WorkspaceStore, dict[str, Any]]],
) -> None:
    store, expected = legacy_store()
    probe = np.asarray(expected["probe_X"], dtype=float)
    assert expected["chains"]
    for chain_id, info in expected["chains"].items():
        np.testing.assert_allclose(
            store.replay_chain(chain_id, probe), info["replay_on_probe"], rtol=0, atol=1e-9
        )
