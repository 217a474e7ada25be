"""Cross-validation of one pipeline on one dataset: the fitting half of `run()`.

Per (pipeline, dataset): the transformers are fitted on the whole training part (shared
artifacts), the estimator is cross-validated (one artifact per fold) and refitted on all
training data (`fold_final`). Predictions follow the nirs4all conventions: per fold `train`
and `val` (the held-out part) and `test` when there is a test set, plus fold `avg` (val =
out-of-fold predictions over every training sample, test = mean of the fold models' test
predictions) and `fold_final` (train, test of the refit model). Each prediction row carries
the score of its own partition (`train_score`, `val_score` or `test_score`) and
`scores = {partition: {metric: value}}` with every metric of the task.

Nothing is written here: `recording.Recorder` commits the filled `FittedPipeline`s in groups.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

from nirs4all_store.store import WorkspaceStore
from nirs4all_store.workbench.progress import Progress
from nirs4all_store.workbench.training.datasets import Dataset
from nirs4all_store.workbench.training.metrics import SCORE_COLUMN, scores
from nirs4all_store.workbench.training.recording import FittedPipeline
from nirs4all_store.workbench.training.steps import describe_step, qualname, step_label

__all__ = ["Clock", "RunContext", "aligned_proba", "as_1d", "run_pipeline", "splitter"]


class Clock:
    """Wall time spent in the store vs fitting, for the benchmark and the run summary."""

    def __init__(self) -> None:
        self.totals = {"store": 0.0, "fit": 0.0}

    @contextmanager
    def __call__(self, what: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.totals[what] += time.perf_counter() - t0


def as_1d(pred: Any) -> np.ndarray:
    """Predictions as a 1-D float64 array (an (n, 1) column is flattened)."""
    arr = np.asarray(pred, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    return arr.reshape(-1) if arr.ndim != 1 else arr


@dataclass
class RunContext:
    """What every pipeline of one run shares: the store, the run, the cv settings, progress."""

    store: WorkspaceStore
    run_id: str
    cv: int
    metric: str
    random_state: int | None
    progress: Progress
    clock: Clock
    err: TextIO
    verbose: int


def splitter(task: str, cv: int, random_state: int | None) -> Any:
    """Shuffled (stratified for classification) K folds."""
    from sklearn.model_selection import KFold, StratifiedKFold

    cls = StratifiedKFold if task == "classification" else KFold
    return cls(n_splits=cv, shuffle=True, random_state=random_state)


def aligned_proba(model: Any, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """predict_proba with columns for every class of the training set (a fold may lack one)."""
    raw = np.asarray(model.predict_proba(X), dtype=np.float64)
    out = np.zeros((len(X), len(classes)))
    cols = np.searchsorted(classes, model.classes_)
    out[:, cols] = raw
    return out


def _log_end(
    item: FittedPipeline,
    step_idx: int,
    operator_class: str,
    ms: float,
    message: str,
    details: dict[str, Any],
) -> None:
    item.logs.append(
        dict(
            step_idx=step_idx,
            operator_class=operator_class,
            event="end",
            duration_ms=ms,
            message=message,
            details=details,
        )
    )


@dataclass
class _Fit:
    """One pipeline on one dataset while it is fitted: its data, its labels and the item
    (`item.predictions`: pipeline_id and chain_id are filled in when recorded) it fills."""

    ctx: RunContext
    ds: Dataset
    task: str
    item: FittedPipeline
    model_idx: int
    model_class: str
    model_name: str
    preprocessings: str
    Xt: np.ndarray
    Xt_test: np.ndarray | None
    y_train: np.ndarray
    y_test: np.ndarray | None
    has_test: bool
    test_idx: np.ndarray | None
    classes: np.ndarray | None
    proba_ok: bool

    def record(
        self,
        fold_id: str,
        partition: str,
        y: np.ndarray,
        p: np.ndarray,
        idx: np.ndarray,
        proba: np.ndarray | None = None,
    ) -> dict[str, Any]:
        metric = self.ctx.metric
        partition_scores = scores(self.task, y, p)
        rec = {
            "dataset_name": self.ds.name,
            "model_name": self.model_name,
            "model_class": self.model_class,
            "fold_id": fold_id,
            "partition": partition,
            "metric": metric,
            "task_type": self.task,
            SCORE_COLUMN[partition]: partition_scores.get(metric),
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

    def proba(self, model: Any, X: np.ndarray) -> np.ndarray:
        return aligned_proba(model, X, self.classes)  # type: ignore[arg-type]


@dataclass
class _Folds:
    """What the fold models predicted, for the `avg` predictions."""

    oof: np.ndarray
    oof_proba: np.ndarray | None = None
    test_preds: list[np.ndarray] = field(default_factory=list)
    test_probas: list[np.ndarray] = field(default_factory=list)


def _fit_transformers(
    ctx: RunContext,
    transformers: list[Any],
    item: FittedPipeline,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Transformers: fitted on the whole training part, shared by every fold."""
    to_save = item.objects  # (key, fitted object, operator class, artifact type)
    Xt, Xt_test = X_train, X_test
    for i, tr in enumerate(transformers):
        t0 = time.perf_counter()
        with ctx.clock("fit"):
            Xt = tr.fit_transform(Xt, y_train)
            if Xt_test is not None:
                Xt_test = tr.transform(Xt_test)
        ms = (time.perf_counter() - t0) * 1000
        to_save.append((str(i), tr, qualname(tr), "transformer"))
        _log_end(item, i, qualname(tr), ms, "fit_transform", {"n_samples": len(Xt)})
    return Xt, Xt_test


def _fit_fold(
    fit: _Fit, estimator: Any, folds: _Folds, k: int, tr_idx: np.ndarray, va_idx: np.ndarray
) -> None:
    """Fold `k`'s model: fitted on `tr_idx`, predictions recorded on train, val and test."""
    from sklearn.base import clone

    Xt, Xt_test, y_train = fit.Xt, fit.Xt_test, fit.y_train
    model = clone(estimator)
    t0 = time.perf_counter()
    with fit.ctx.clock("fit"):
        model.fit(Xt[tr_idx], y_train[tr_idx])
        p_tr = as_1d(model.predict(Xt[tr_idx]))
        p_va = as_1d(model.predict(Xt[va_idx]))
        pr_tr = fit.proba(model, Xt[tr_idx]) if fit.proba_ok else None
        pr_va = fit.proba(model, Xt[va_idx]) if fit.proba_ok else None
        p_te = as_1d(model.predict(Xt_test)) if Xt_test is not None else None
        pr_te = fit.proba(model, Xt_test) if fit.proba_ok and Xt_test is not None else None
    ms = (time.perf_counter() - t0) * 1000
    fold_id = f"fold_{k}"
    fit.item.objects.append((fold_id, model, fit.model_class, "model"))
    fit.record(fold_id, "train", y_train[tr_idx], p_tr, tr_idx, pr_tr)
    val = fit.record(fold_id, "val", y_train[va_idx], p_va, va_idx, pr_va)
    folds.oof[va_idx] = p_va
    if pr_va is not None:
        if folds.oof_proba is None:
            folds.oof_proba = np.zeros((len(y_train), pr_va.shape[1]))
        folds.oof_proba[va_idx] = pr_va
    if p_te is not None:
        fit.record(fold_id, "test", fit.y_test, p_te, fit.test_idx, pr_te)  # type: ignore[arg-type]
        folds.test_preds.append(p_te)
        if pr_te is not None:
            folds.test_probas.append(pr_te)
    details = {"n_train": len(tr_idx), "n_val": len(va_idx), "val_score": val["val_score"]}
    _log_end(fit.item, fit.model_idx, fit.model_class, ms, f"fold {k}", details)
    fit.ctx.progress.advance(
        1, f"{fit.ds.name}: {fit.preprocessings or '-'} > {fit.model_name} fold {k}"
    )


def _cross_validate(fit: _Fit, estimator: Any) -> _Folds:
    """One model per fold of the splitter; their predictions for the `avg` fold."""
    ctx = fit.ctx
    folds = _Folds(oof=np.full(len(fit.y_train), np.nan))
    splits = list(splitter(fit.task, ctx.cv, ctx.random_state).split(fit.Xt, fit.y_train))
    for k, (tr_idx, va_idx) in enumerate(splits):
        _fit_fold(fit, estimator, folds, k, tr_idx, va_idx)
    return folds


def _record_averages(fit: _Fit, folds: _Folds) -> tuple[Any, Any]:
    """(best_val, best_test) of the fold `avg` predictions, recorded here."""
    # Averaged predictions: out-of-fold val over all training samples; mean of fold test preds.
    n = len(fit.y_train)
    avg_val = fit.record("avg", "val", fit.y_train, folds.oof, np.arange(n), folds.oof_proba)
    best_test = None
    if fit.has_test:
        if fit.task == "classification":
            if folds.test_probas:
                mean_proba = np.mean(folds.test_probas, axis=0)
                p_avg = fit.classes[np.argmax(mean_proba, axis=1)]  # type: ignore[index]
            else:  # majority vote
                stacked = np.stack(folds.test_preds)
                mean_proba = None
                p_avg = np.array(
                    [np.unique(c, return_counts=True) for c in stacked.T], dtype=object
                )
                p_avg = np.array(
                    [vals[np.argmax(counts)] for vals, counts in p_avg], dtype=np.float64
                )
            best_test = fit.record(
                "avg",
                "test",
                fit.y_test,  # type: ignore[arg-type]
                p_avg,
                fit.test_idx,  # type: ignore[arg-type]
                mean_proba,
            )["test_score"]
        else:
            mean_test = np.mean(folds.test_preds, axis=0)
            best_test = fit.record("avg", "test", fit.y_test, mean_test, fit.test_idx)[  # type: ignore[arg-type]
                "test_score"
            ]
    return avg_val["val_score"], best_test


def _refit(fit: _Fit, estimator: Any) -> None:
    """Refit on all training data: the model a bundle replays."""
    from sklearn.base import clone

    Xt, Xt_test, y_train = fit.Xt, fit.Xt_test, fit.y_train
    n = len(y_train)
    final = clone(estimator)
    t0 = time.perf_counter()
    with fit.ctx.clock("fit"):
        final.fit(Xt, y_train)
        p_fin = as_1d(final.predict(Xt))
        pr_fin = fit.proba(final, Xt) if fit.proba_ok else None
        p_fin_te = as_1d(final.predict(Xt_test)) if Xt_test is not None else None
        pr_fin_te = fit.proba(final, Xt_test) if fit.proba_ok and Xt_test is not None else None
    ms = (time.perf_counter() - t0) * 1000
    fit.item.objects.append(("fold_final", final, fit.model_class, "model"))
    fit.record("fold_final", "train", y_train, p_fin, np.arange(n), pr_fin)
    if p_fin_te is not None:
        fit.record("fold_final", "test", fit.y_test, p_fin_te, fit.test_idx, pr_fin_te)  # type: ignore[arg-type]
    _log_end(fit.item, fit.model_idx, fit.model_class, ms, "fold_final", {"n_train": n})
    fit.ctx.progress.advance(
        1, f"{fit.ds.name}: {fit.preprocessings or '-'} > {fit.model_name} refit"
    )


def run_pipeline(
    ctx: RunContext, steps: list[Any], task: str, ds: Dataset, item: FittedPipeline
) -> FittedPipeline:
    """Fit and cross-validate one pipeline on one dataset; fill `item` with what to record.

    Nothing is written here: the `Recorder` commits pipelines in groups.
    """
    from sklearn.base import clone

    t_start = time.perf_counter()
    steps = [clone(s) for s in steps]
    transformers, estimator = steps[:-1], steps[-1]
    X_train, y_train = np.asarray(ds.X_train), np.asarray(ds.y_train)
    X_test = None if ds.X_test is None else np.asarray(ds.X_test)
    y_test = None if ds.y_test is None else np.asarray(ds.y_test)
    Xt, Xt_test = _fit_transformers(ctx, transformers, item, X_train, y_train, X_test)
    fit = _Fit(
        ctx=ctx,
        ds=ds,
        task=task,
        item=item,
        model_idx=len(steps) - 1,
        model_class=qualname(estimator),
        model_name=step_label(estimator),
        preprocessings=">".join(type(t).__name__ for t in transformers),
        Xt=Xt,
        Xt_test=Xt_test,
        y_train=y_train,
        y_test=y_test,
        has_test=X_test is not None,
        test_idx=None if X_test is None else np.arange(len(X_test)),
        classes=np.unique(y_train) if task == "classification" else None,
        proba_ok=task == "classification" and hasattr(estimator, "predict_proba"),
    )
    folds = _cross_validate(fit, estimator)
    best_val, best_test = _record_averages(fit, folds)
    _refit(fit, estimator)
    duration_ms = (time.perf_counter() - t_start) * 1000

    item.chain = {
        "steps": [describe_step(s, i) for i, s in enumerate(steps)],
        "model_step_idx": fit.model_idx,
        "model_class": fit.model_class,
        "preprocessings": fit.preprocessings,
        "fold_strategy": "per_fold",
        "model_name": fit.model_name,
        "metric": ctx.metric,
        "task_type": task,
        "dataset_name": ds.name,
    }
    item.completion = {
        "best_val": best_val,
        "best_test": best_test,
        "metric": ctx.metric,
        "duration_ms": duration_ms,
    }
    return item
