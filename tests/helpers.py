"""Small builders shared by the store tests: a run with real scikit-learn artifacts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nirs4all_store import WorkspaceStore


def spectra(n: int = 40, p: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = X @ rng.normal(size=p) + 0.1 * rng.normal(size=n)
    return X, y


@dataclass
class Recorded:
    run_id: str
    pipeline_id: str
    chain_id: str
    artifact_ids: list[str]
    prediction_ids: list[str] = field(default_factory=list)


def record_pipeline(
    store: WorkspaceStore,
    run_id: str | None = None,
    *,
    seed: int = 0,
    n_folds: int = 2,
    dataset_name: str = "wheat",
    with_predictions: bool = True,
) -> Recorded:
    """A pipeline StandardScaler > PLSRegression with fold models, predictions and logs."""
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.preprocessing import StandardScaler

    X, y = spectra(seed=seed)
    if run_id is None:
        run_id = store.begin_run(
            f"run-{seed}", config={"cv": n_folds}, datasets=[{"name": dataset_name}]
        )
    pipeline_id = store.begin_pipeline(
        run_id, f"pipe-{seed}", {"steps": ["StandardScaler", "PLS"]}, None, dataset_name, "hash"
    )
    scaler = StandardScaler().fit(X)
    Xs = scaler.transform(X)
    scaler_id = store.save_artifact(scaler, "StandardScaler", "transformer")
    folds: dict[str, Any] = {}
    for fold in range(n_folds):
        model = PLSRegression(n_components=2).fit(Xs[fold::n_folds], y[fold::n_folds])
        folds[f"fold_{fold}"] = store.save_artifact(model, "PLSRegression", "model")
    chain_id = store.save_chain(
        pipeline_id,
        steps=[
            {"step_idx": 0, "operator_class": "StandardScaler"},
            {"step_idx": 1, "operator_class": "PLSRegression"},
        ],
        model_step_idx=1,
        model_class="PLSRegression",
        preprocessings="StandardScaler",
        fold_strategy="per_fold",
        fold_artifacts=folds,
        shared_artifacts={"0": scaler_id},
        model_name="PLS",
        metric="rmse",
        task_type="regression",
        dataset_name=dataset_name,
    )
    rec = Recorded(run_id, pipeline_id, chain_id, [scaler_id, *folds.values()])
    if with_predictions:
        records = []
        for fold in range(n_folds):
            for partition, score in (("train", 0.1), ("val", 0.2 + 0.01 * seed + 0.001 * fold)):
                records.append(
                    prediction_record(
                        pipeline_id,
                        chain_id,
                        fold=f"fold_{fold}",
                        partition=partition,
                        score=score,
                        dataset_name=dataset_name,
                        seed=seed,
                    )
                )
        rec.prediction_ids = store.save_predictions(records)
        store.log_step(pipeline_id, 0, "StandardScaler", "fit", 1.5)
        store.log_step(pipeline_id, 1, "PLSRegression", "fit", 2.5, level="warning", message="slow")
    return rec


def prediction_record(
    pipeline_id: str,
    chain_id: str | None,
    *,
    fold: str = "fold_0",
    partition: str = "val",
    score: float = 0.5,
    dataset_name: str = "wheat",
    model_class: str = "PLSRegression",
    seed: int = 0,
    n: int = 20,
    **extra: Any,
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    y_true = rng.normal(size=n)
    return {
        "pipeline_id": pipeline_id,
        "chain_id": chain_id,
        "dataset_name": dataset_name,
        "model_name": "PLS",
        "model_class": model_class,
        "fold_id": fold,
        "partition": partition,
        "val_score": score,
        "metric": "rmse",
        "task_type": "regression",
        "n_features": 12,
        "scores": {"rmse": score, "r2": 0.9},
        "y_true": y_true,
        "y_pred": y_true + 0.1,
        "sample_indices": np.arange(n),
        **extra,
    }
