"""Cross-validation of one pipeline on one dataset: honest by construction.

Every fold fits the WHOLE pipeline (preprocessing and model, a scikit-learn `Pipeline` of
clones) on that fold's training part only, as `cross_validate` of a `Pipeline` does: a
supervised step (feature selection, a y-aware filter) never sees the fold's held-out samples.
Measured on pure noise (100 x 2000, `SelectKBest(k=10)` + `LinearRegression`): fitting the
preprocessing once on all training data before the folds gave CV R2 0.51; per fold it gives
R2 near or below 0 (tests/workbench/training/test_honest_cv.py).

`fit_fold` is what a worker runs (picklable arguments in, the fitted `Pipeline`, its
predictions and their scores out; it never touches the store). The scores of a fold's own
partitions are computed there, not in the parent: `sklearn.metrics` validates its inputs
(~1.1 ms per partition, 0.43 s of a 2.1 s run of 20 pipelines x 5 folds, measured), and in
the parent that time was serial whatever `n_jobs` was. `assemble` turns the fold results of one
pipeline into the records `recording.Recorder` writes: per fold `train`, `val` (held-out
part) and `test` when there is a test set; fold `avg` (val = out-of-fold predictions,
averaged over repeats for repeated CV; test = the fold ensemble: mean prediction, mean
probabilities for classifiers); `fold_final` (train, test) = the refit on all training data.
Each fold's fitted `Pipeline` is one artifact (`fold_artifacts["fold_k"]`): replaying the
fold ensemble, or the refit model alone (what bundles and `predict` use), is exact.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nirs4all_store.workbench.training.datasets import Dataset
from nirs4all_store.workbench.training.metrics import SCORE_COLUMN, scores
from nirs4all_store.workbench.training.recording import FittedPipeline, traceback_excerpt
from nirs4all_store.workbench.training.steps import describe_step, qualname, step_label

__all__ = ["FINAL", "FoldFit", "aligned_proba", "as_1d", "assemble", "fit_fold", "make_model"]

FINAL = "fold_final"
PIPELINE_CLASS = "sklearn.pipeline.Pipeline"


def as_1d(pred: Any) -> np.ndarray:
    """Predictions as a 1-D float64 array (an (n, 1) column is flattened)."""
    arr = np.asarray(pred, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    return arr.reshape(-1) if arr.ndim != 1 else arr


def aligned_proba(model: Any, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """predict_proba with columns for every class of the training set (a fold may lack one)."""
    raw = np.asarray(model.predict_proba(X), dtype=np.float64)
    out = np.zeros((len(X), len(classes)))
    out[:, np.searchsorted(classes, model.classes_)] = raw
    return out


def make_model(steps: list[Any]) -> Any:
    """A fresh scikit-learn `Pipeline` of clones of `steps` (the user's objects stay unfitted)."""
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline

    return make_pipeline(*[clone(s) for s in steps])


@dataclass
class FoldFit:
    """What a worker returns for one fold (or the refit): the fitted pipeline, predictions."""

    fold_id: str
    train_idx: np.ndarray
    val_idx: np.ndarray | None
    model: Any = None
    preds: dict[str, np.ndarray] = field(default_factory=dict)  # partition -> labels/values
    probas: dict[str, np.ndarray] = field(default_factory=dict)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)  # partition -> scores
    seconds: float = 0.0
    error: str | None = None
    error_summary: str = ""


def fit_fold(
    steps: list[Any],
    task: str,
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray | None,
    y_test: np.ndarray | None,
    fold_id: str,
    train_idx: np.ndarray,
    val_idx: np.ndarray | None,
    classes: np.ndarray | None,
) -> FoldFit:
    """Fit the whole pipeline on `train_idx`; predict and score train, val and test. Runs in
    a worker, under the one-BLAS-thread limit `parallel.fit_chunk` sets."""
    out = FoldFit(fold_id, train_idx, val_idx)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = make_model(steps)
            model.fit(X[train_idx], y[train_idx])
            parts = {"train": (X[train_idx], y[train_idx])}
            if val_idx is not None:
                parts["val"] = (X[val_idx], y[val_idx])
            if X_test is not None:
                parts["test"] = (X_test, y_test)
            proba = classes is not None and hasattr(model, "predict_proba")
            for partition, (Xp, yp) in parts.items():
                out.preds[partition] = as_1d(model.predict(Xp))
                if proba:
                    out.probas[partition] = aligned_proba(model, Xp, classes)  # type: ignore[arg-type]
                if yp is not None:
                    out.scores[partition] = scores(task, np.asarray(yp), out.preds[partition])
        out.model = model
    except Exception as exc:
        out.error = traceback_excerpt()
        out.error_summary = f"{type(exc).__name__}: {exc}"
    out.seconds = time.perf_counter() - t0
    return out


@dataclass
class _Records:
    """Builds the prediction records of one pipeline on one dataset."""

    ds: Dataset
    task: str
    metric: str
    model_name: str
    model_class: str
    preprocessings: str
    item: FittedPipeline

    def add(
        self,
        fold_id: str,
        partition: str,
        y: np.ndarray,
        p: np.ndarray,
        idx: np.ndarray,
        proba: np.ndarray | None = None,
        partition_scores: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if partition_scores is None:  # not scored by the worker (the fold ensemble)
            partition_scores = scores(self.task, y, p)
        rec = {
            "dataset_name": self.ds.name,
            "model_name": self.model_name,
            "model_class": self.model_class,
            "fold_id": fold_id,
            "partition": partition,
            "metric": self.metric,
            "task_type": self.task,
            SCORE_COLUMN[partition]: partition_scores.get(self.metric),
            "n_samples": len(y),
            "n_features": self.ds.n_features,
            "scores": {partition: partition_scores},
            "preprocessings": self.preprocessings,
            "y_true": y,
            "y_pred": p,
            "sample_indices": idx,
        }
        if proba is not None:
            rec["y_proba"] = proba
        self.item.predictions.append(rec)
        return rec


def _vote(preds: list[np.ndarray]) -> np.ndarray:
    """Majority vote per sample (ties: the smallest label), for classifiers without proba."""
    stacked = np.stack(preds)
    out = np.empty(stacked.shape[1])
    for j, column in enumerate(stacked.T):
        values, counts = np.unique(column, return_counts=True)
        out[j] = values[np.argmax(counts)]
    return out


def _combine(
    task: str, classes: np.ndarray | None, preds: list[np.ndarray], probas: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray | None]:
    """The ensemble of several predictions of the same samples (mean, mean proba or vote)."""
    if task != "classification":
        return np.mean(preds, axis=0), None
    if probas:
        mean = np.mean(probas, axis=0)
        return classes[np.argmax(mean, axis=1)], mean  # type: ignore[index]
    return _vote(preds), None


def _out_of_fold(
    task: str, classes: np.ndarray | None, fits: list[FoldFit], n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(covered sample indices, out-of-fold predictions, probabilities): each training sample
    once, averaged over the folds that held it out (repeated CV: mean, mean probabilities or
    vote), samples no fold held out left out."""
    counts = np.zeros(n, dtype=np.int64)
    for fit in fits:
        np.add.at(counts, fit.val_idx, 1)
    covered = np.flatnonzero(counts)
    with_proba = task == "classification" and bool(fits[0].probas)
    if counts.max() == 1:  # a partition (k-fold): each fold's own predictions, exactly
        pred = np.empty(n)
        proba = np.empty((n, fits[0].probas["val"].shape[1])) if with_proba else None
        for fit in fits:
            pred[fit.val_idx] = fit.preds["val"]
            if proba is not None:
                proba[fit.val_idx] = fit.probas["val"]
        return covered, pred[covered], None if proba is None else proba[covered]
    if task != "classification":
        sums = np.zeros(n)
        for fit in fits:
            np.add.at(sums, fit.val_idx, fit.preds["val"])
        return covered, sums[covered] / counts[covered], None
    n_classes = len(classes)  # type: ignore[arg-type]
    acc = np.zeros((n, n_classes))
    for fit in fits:
        if with_proba:
            np.add.at(acc, fit.val_idx, fit.probas["val"])
        else:  # one vote per fold for its predicted class
            cols = np.searchsorted(classes, fit.preds["val"])  # type: ignore[arg-type]
            np.add.at(acc, (fit.val_idx, cols), 1.0)
    acc = acc[covered] / counts[covered, None]
    pred = classes[np.argmax(acc, axis=1)]  # type: ignore[index]
    return covered, pred.astype(np.float64), (acc if with_proba else None)


def _log(item: FittedPipeline, step_idx: int, fit: FoldFit, message: str, **details: Any) -> None:
    item.logs.append(
        dict(
            step_idx=step_idx,
            operator_class=PIPELINE_CLASS,
            event="end",
            duration_ms=fit.seconds * 1000,
            message=message,
            details=details,
        )
    )


def _record_folds(rec: _Records, folds: list[FoldFit], model_idx: int) -> None:
    """Each fold's artifact (its fitted Pipeline), train/val/test predictions and log line."""
    ds, item = rec.ds, rec.item
    y, y_test = np.asarray(ds.y_train), ds.y_test
    test_idx = None if y_test is None else np.arange(len(y_test))
    for k, fit in enumerate(folds):
        tr, va = fit.train_idx, fit.val_idx
        assert va is not None
        item.objects.append((fit.fold_id, fit.model, PIPELINE_CLASS, "model"))
        pr, sc = fit.probas, fit.scores
        rec.add(fit.fold_id, "train", y[tr], fit.preds["train"], tr, pr.get("train"), sc["train"])
        val = rec.add(fit.fold_id, "val", y[va], fit.preds["val"], va, pr.get("val"), sc["val"])
        if y_test is not None and test_idx is not None:
            test_p = fit.preds["test"]
            rec.add(fit.fold_id, "test", y_test, test_p, test_idx, pr.get("test"), sc["test"])
        details = {"n_train": len(tr), "n_val": len(va), "val_score": val["val_score"]}
        _log(item, model_idx, fit, f"fold {k}", **details)


def _record_ensemble(
    rec: _Records, folds: list[FoldFit], classes: np.ndarray | None
) -> tuple[Any, Any]:
    """Fold `avg`: out-of-fold val and the fold ensemble's test; (best_val, best_test)."""
    y, y_test = np.asarray(rec.ds.y_train), rec.ds.y_test
    covered, oof, oof_proba = _out_of_fold(rec.task, classes, folds, len(y))
    best_val = rec.add("avg", "val", y[covered], oof, covered, oof_proba)["val_score"]
    if y_test is None:
        return best_val, None
    tests = [f.preds["test"] for f in folds]
    p, proba = _combine(rec.task, classes, tests, [f.probas["test"] for f in folds if f.probas])
    test = rec.add("avg", "test", y_test, p, np.arange(len(y_test)), proba)
    return best_val, test["test_score"]


def _record_refit(rec: _Records, final: FoldFit, model_idx: int) -> None:
    """`fold_final`: the refit's artifact (what bundles export), train and test predictions."""
    y, y_test = np.asarray(rec.ds.y_train), rec.ds.y_test
    rec.item.objects.append((FINAL, final.model, PIPELINE_CLASS, "model"))
    pr, sc = final.probas, final.scores
    rec.add(FINAL, "train", y, final.preds["train"], final.train_idx, pr.get("train"), sc["train"])
    refit_test = None
    if y_test is not None:
        idx = np.arange(len(y_test))
        test = rec.add(FINAL, "test", y_test, final.preds["test"], idx, pr.get("test"), sc["test"])
        refit_test = test["test_score"]
    _log(rec.item, model_idx, final, FINAL, n_train=len(y), refit_test_score=refit_test)


def assemble(
    steps: list[Any],
    task: str,
    ds: Dataset,
    metric: str,
    item: FittedPipeline,
    fits: list[FoldFit],
) -> FittedPipeline:
    """Fill `item` from the worker results of one pipeline (folds in order, then the refit).

    A fold whose fit raised fails the whole pipeline (its item gets `error`)."""
    failed = next((f for f in fits if f.error is not None), None)
    if failed is not None:
        item.error = failed.error
        item.error_summary = f"{failed.error_summary} (fitting {failed.fold_id})"
        return item
    folds, final = fits[:-1], fits[-1]
    if ds.wavelengths is not None:
        # The axis travels inside every fitted pipeline, hence inside bundles too (replay can
        # compare a caller's `wavelengths=` with it; the fitted width is `n_features_in_`).
        for fit in fits:
            fit.model.wavelengths_ = np.array(ds.wavelengths)
    model = steps[-1]
    preprocessings = ">".join(type(t).__name__ for t in steps[:-1])
    rec = _Records(ds, task, metric, step_label(model), qualname(model), preprocessings, item)
    classes = np.unique(ds.y_train) if task == "classification" else None
    model_idx = len(steps) - 1
    _record_folds(rec, folds, model_idx)
    best_val, best_test = _record_ensemble(rec, folds, classes)
    _record_refit(rec, final, model_idx)
    item.chain = {
        "steps": [describe_step(s, i) for i, s in enumerate(steps)],
        "model_step_idx": model_idx,
        "model_class": rec.model_class,
        "preprocessings": preprocessings,
        "fold_strategy": "per_fold",
        "model_name": rec.model_name,
        "metric": metric,
        "task_type": task,
        "dataset_name": ds.name,
    }
    item.completion = {
        "best_val": best_val,
        "best_test": best_test,
        "metric": metric,
        "duration_ms": sum(f.seconds for f in fits) * 1000,
    }
    return item
