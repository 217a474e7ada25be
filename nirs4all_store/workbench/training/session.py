"""`run()`: cross-validated training sessions on scikit-learn, recorded into a workspace.

Built only on the public `WorkspaceStore` API. Per (pipeline, dataset): the transformers are
fitted on the whole training part (shared artifacts), the estimator is cross-validated (one
artifact per fold) and refitted on all training data (`fold_final`). Predictions follow the
nirs4all conventions: per fold `train` and `val` (the held-out part) and `test` when there is a
test set, plus fold `avg` (val = out-of-fold predictions over every training sample, test =
mean of the fold models' test predictions) and `fold_final` (train, test of the refit model).
Each prediction row carries the score of its own partition (`train_score`, `val_score` or
`test_score`) and `scores = {partition: {metric: value}}` with every metric of the task.

Fitting happens here; recording is `recording.Recorder`'s job: fitted pipelines are committed
in groups, each group in ONE transaction with one bulk call per table. An exception inside one
pipeline (fitting or recording it) fails that pipeline only.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pyarrow as pa

from nirs4all_store.store import WorkspaceStore
from nirs4all_store.workbench.progress import Progress, format_table
from nirs4all_store.workbench.training.datasets import Dataset, as_datasets
from nirs4all_store.workbench.training.recording import (
    DEFAULT_COMMIT_EVERY,
    FittedPipeline,
    Recorder,
    check_commit_every,
    traceback_excerpt,
)

__all__ = [
    "METRICS",
    "RunResult",
    "describe_step",
    "metric_ascending",
    "run",
    "step_label",
]

# -- metrics ------------------------------------------------------------------------------


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - p) ** 2)))


def _mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(y - p)))


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if len(y) < 2 or ss_tot == 0.0:
        return math.nan
    return 1.0 - float(np.sum((y - p) ** 2)) / ss_tot


def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(y == p))


def _balanced_accuracy(y: np.ndarray, p: np.ndarray) -> float:
    recalls = [float(np.mean(p[y == c] == c)) for c in np.unique(y)]
    return float(np.mean(recalls))


#: name -> (function, task, higher_is_better). Scores are stored as computed; the direction
#: decides the order of leaderboards (`metric_ascending`).
METRICS: dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], str, bool]] = {
    "rmse": (_rmse, "regression", False),
    "mae": (_mae, "regression", False),
    "r2": (_r2, "regression", True),
    "accuracy": (_accuracy, "classification", True),
    "balanced_accuracy": (_balanced_accuracy, "classification", True),
}
DEFAULT_METRIC = {"regression": "rmse", "classification": "balanced_accuracy"}
SCORE_COLUMN = {"train": "train_score", "val": "val_score", "test": "test_score"}


def metric_ascending(metric: str) -> bool:
    """True when lower is better (rmse, mae): the sort order of a leaderboard on `metric`."""
    if metric not in METRICS:
        return True  # unknown (e.g. adopted legacy) metric: error-like by default
    return not METRICS[metric][2]


def _scores(task: str, y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, (fn, metric_task, _) in METRICS.items():
        if metric_task == task:
            value = fn(y, p)
            out[name] = value if math.isfinite(value) else None
    return out


# -- step descriptions --------------------------------------------------------------------


def _qualname(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _json_safe(value: Any) -> Any:
    """A JSON-safe copy of a parameter value (estimators as their description, else repr)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if hasattr(value, "get_params") and hasattr(value, "fit"):
        return {"operator_class": _qualname(value), "params": _json_params(value)}
    return repr(value)


def _json_params(step: Any) -> dict[str, Any]:
    return {k: _json_safe(v) for k, v in step.get_params(deep=False).items()}


def describe_step(step: Any, step_idx: int) -> dict[str, Any]:
    """The chain's description of one step: {step_idx, operator_class, params}."""
    return {"step_idx": step_idx, "operator_class": _qualname(step), "params": _json_params(step)}


def step_label(step: Any) -> str:
    """`PLSRegression(n_components=10)`: the class and its non-default parameters, one line."""
    from sklearn import config_context

    with config_context(print_changed_only=True):
        text = repr(step)
    return " ".join(text.split())


# -- input checks -------------------------------------------------------------------------


def _normalise_pipelines(pipeline: Any) -> list[list[Any]]:
    """A list of steps, or a list of such lists, as a list of pipelines (validated)."""
    if not isinstance(pipeline, (list, tuple)) or not pipeline:
        raise TypeError(
            "pipeline must be a non-empty list of scikit-learn steps (transformers then one "
            f"estimator) or a list of such lists; got {pipeline!r}"
        )
    nested = all(isinstance(p, (list, tuple)) for p in pipeline)
    if any(isinstance(p, (list, tuple)) for p in pipeline) and not nested:
        raise TypeError(
            "pipeline mixes steps and lists of steps; give one list of steps or a list of lists"
        )
    pipelines = [list(p) for p in pipeline] if nested else [list(pipeline)]
    for i, steps in enumerate(pipelines):
        where = f"pipeline {i}" if nested else "pipeline"
        if not steps:
            raise ValueError(f"{where} is empty; expected transformers then one estimator")
        for j, step in enumerate(steps[:-1]):
            if not (
                hasattr(step, "fit") and hasattr(step, "transform") and hasattr(step, "get_params")
            ):
                raise TypeError(
                    f"{where} step {j} ({step!r}) is not a scikit-learn transformer; expected an "
                    "object with fit/transform/get_params before the final estimator"
                )
        model = steps[-1]
        if not (
            hasattr(model, "fit") and hasattr(model, "predict") and hasattr(model, "get_params")
        ):
            raise TypeError(
                f"{where} last step ({model!r}) is not a scikit-learn estimator; expected an "
                "object with fit/predict/get_params"
            )
    return pipelines


def _task_of(steps: list[Any], task_type: str | None) -> str:
    if task_type is not None:
        return task_type
    from sklearn.base import is_classifier

    return "classification" if is_classifier(steps[-1]) else "regression"


# -- result -------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What `run()` recorded: queries, export and prediction from the best chain.

    Holds an open store; `close()` it (or use `with`) when `run()` opened the workspace, to
    release the database file for other processes.
    """

    run_id: str
    store: WorkspaceStore
    metric: str
    status: str = "completed"
    pipeline_ids: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    owns_store: bool = False

    @property
    def ascending(self) -> bool:
        return metric_ascending(self.metric)

    def top(
        self,
        n: int = 5,
        *,
        partition: str = "val",
        fold_id: str | None = "avg",
        dataset_name: str | None = None,
        ascending: bool | None = None,
    ) -> pa.Table:
        """The run's best predictions on `partition` (default: cross-validated val, fold avg)."""
        if partition not in SCORE_COLUMN:
            raise ValueError(f"partition must be one of {list(SCORE_COLUMN)}, got {partition!r}")
        filters: dict[str, Any] = {} if fold_id is None else {"fold_id": fold_id}
        return self.store.top_predictions(
            n,
            metric=SCORE_COLUMN[partition],
            ascending=self.ascending if ascending is None else ascending,
            partition=partition,
            dataset_name=dataset_name,
            run_id=self.run_id,
            **filters,
        )

    @property
    def best(self) -> dict[str, Any]:
        """The best cross-validated (fold avg, val) prediction of the run, as a dict."""
        rows = self.top(1).to_pylist()
        if not rows:
            raise LookupError(f"run {self.run_id} has no completed pipeline: no best chain")
        return rows[0]

    def _chain_of(self, prediction_id: str | None) -> str:
        if prediction_id is None:
            return str(self.best["chain_id"])
        row = self.store.get_prediction(prediction_id)
        if row is None:
            raise KeyError(f"unknown prediction_id {prediction_id!r}")
        if row.get("chain_id") is None:
            raise LookupError(f"prediction {prediction_id} has no chain to export")
        return str(row["chain_id"])

    def export(self, path: str | os.PathLike[str], prediction_id: str | None = None) -> Path:
        """Write the best chain's `.n4a` bundle (or the chain of `prediction_id`) to `path`."""
        return Path(self.store.export_chain(self._chain_of(prediction_id), path))

    def predict(self, X: Any) -> np.ndarray:
        """Predictions of the best chain on new spectra (replayed from the stored artifacts)."""
        return np.asarray(self.store.replay_chain(self._chain_of(None), X))

    def close(self) -> None:
        if self.owns_store:
            self.store.close()

    def __enter__(self) -> RunResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"RunResult(run_id={self.run_id!r}, status={self.status!r}, metric={self.metric!r}, "
            f"pipelines={len(self.pipeline_ids)}, failed={len(self.failed)})"
        )


# -- the session --------------------------------------------------------------------------


class _Clock:
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


def _as_1d(pred: Any) -> np.ndarray:
    arr = np.asarray(pred, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    return arr.reshape(-1) if arr.ndim != 1 else arr


@dataclass
class _Context:
    store: WorkspaceStore
    run_id: str
    cv: int
    metric: str
    random_state: int | None
    progress: Progress
    clock: _Clock
    err: TextIO
    verbose: int


def _splitter(task: str, cv: int, random_state: int | None) -> Any:
    from sklearn.model_selection import KFold, StratifiedKFold

    cls = StratifiedKFold if task == "classification" else KFold
    return cls(n_splits=cv, shuffle=True, random_state=random_state)


def _run_pipeline(
    ctx: _Context, steps: list[Any], task: str, ds: Dataset, item: FittedPipeline
) -> FittedPipeline:
    """Fit and cross-validate one pipeline on one dataset; fill `item` with what to record.

    Nothing is written here: the `Recorder` commits pipelines in groups.
    """
    from sklearn.base import clone

    clock, metric = ctx.clock, ctx.metric
    t_start = time.perf_counter()
    steps = [clone(s) for s in steps]
    transformers, estimator = steps[:-1], steps[-1]
    model_idx = len(steps) - 1
    logs = item.logs
    X_train, y_train = np.asarray(ds.X_train), np.asarray(ds.y_train)
    X_test = None if ds.X_test is None else np.asarray(ds.X_test)
    y_test = None if ds.y_test is None else np.asarray(ds.y_test)

    # Transformers: fitted on the whole training part, shared by every fold.
    to_save = item.objects  # (key, fitted object, operator class, artifact type)
    Xt, Xt_test = X_train, X_test
    for i, tr in enumerate(transformers):
        t0 = time.perf_counter()
        with clock("fit"):
            Xt = tr.fit_transform(Xt, y_train)
            if Xt_test is not None:
                Xt_test = tr.transform(Xt_test)
        ms = (time.perf_counter() - t0) * 1000
        to_save.append((str(i), tr, _qualname(tr), "transformer"))
        logs.append(
            dict(
                step_idx=i,
                operator_class=_qualname(tr),
                event="end",
                duration_ms=ms,
                message="fit_transform",
                details={"n_samples": len(Xt)},
            )
        )

    model_class = _qualname(estimator)
    model_name = step_label(estimator)
    preprocessings = ">".join(type(t).__name__ for t in transformers)
    proba_ok = task == "classification" and hasattr(estimator, "predict_proba")
    n = len(y_train)
    oof = np.full(n, np.nan)
    oof_proba: np.ndarray | None = None
    classes = np.unique(y_train) if task == "classification" else None
    test_preds: list[np.ndarray] = []
    test_probas: list[np.ndarray] = []
    pending = item.predictions  # pipeline_id and chain_id are filled in when recorded

    def record(
        fold_id: str,
        partition: str,
        y: np.ndarray,
        p: np.ndarray,
        idx: np.ndarray,
        proba: np.ndarray | None = None,
    ) -> dict[str, Any]:
        scores = _scores(task, y, p)
        rec = {
            "dataset_name": ds.name,
            "model_name": model_name,
            "model_class": model_class,
            "fold_id": fold_id,
            "partition": partition,
            "metric": metric,
            "task_type": task,
            SCORE_COLUMN[partition]: scores.get(metric),
            "n_samples": len(y),
            "n_features": ds.n_features,
            "scores": {partition: scores},
            "preprocessings": preprocessings,
            "y_true": y,
            "y_pred": p,
            "sample_indices": idx,
        }
        if proba is not None:
            rec["y_proba"] = proba
        pending.append(rec)
        return rec

    def aligned_proba(model: Any, X: np.ndarray) -> np.ndarray:
        """predict_proba with columns for every class of the training set (a fold may lack one)."""
        raw = np.asarray(model.predict_proba(X), dtype=np.float64)
        out = np.zeros((len(X), len(classes)))  # type: ignore[arg-type]
        cols = np.searchsorted(classes, model.classes_)  # type: ignore[arg-type]
        out[:, cols] = raw
        return out

    test_idx = None if X_test is None else np.arange(len(X_test))
    splits = list(_splitter(task, ctx.cv, ctx.random_state).split(Xt, y_train))
    for k, (tr_idx, va_idx) in enumerate(splits):
        model = clone(estimator)
        t0 = time.perf_counter()
        with clock("fit"):
            model.fit(Xt[tr_idx], y_train[tr_idx])
            p_tr = _as_1d(model.predict(Xt[tr_idx]))
            p_va = _as_1d(model.predict(Xt[va_idx]))
            pr_tr = aligned_proba(model, Xt[tr_idx]) if proba_ok else None
            pr_va = aligned_proba(model, Xt[va_idx]) if proba_ok else None
            p_te = _as_1d(model.predict(Xt_test)) if Xt_test is not None else None
            pr_te = aligned_proba(model, Xt_test) if proba_ok and Xt_test is not None else None
        ms = (time.perf_counter() - t0) * 1000
        fold_id = f"fold_{k}"
        to_save.append((fold_id, model, model_class, "model"))
        record(fold_id, "train", y_train[tr_idx], p_tr, tr_idx, pr_tr)
        val = record(fold_id, "val", y_train[va_idx], p_va, va_idx, pr_va)
        oof[va_idx] = p_va
        if pr_va is not None:
            if oof_proba is None:
                oof_proba = np.zeros((n, pr_va.shape[1]))
            oof_proba[va_idx] = pr_va
        if p_te is not None:
            record(fold_id, "test", y_test, p_te, test_idx, pr_te)  # type: ignore[arg-type]
            test_preds.append(p_te)
            if pr_te is not None:
                test_probas.append(pr_te)
        logs.append(
            dict(
                step_idx=model_idx,
                operator_class=model_class,
                event="end",
                duration_ms=ms,
                message=f"fold {k}",
                details={
                    "n_train": len(tr_idx),
                    "n_val": len(va_idx),
                    "val_score": val["val_score"],
                },
            )
        )
        ctx.progress.advance(1, f"{ds.name}: {preprocessings or '-'} > {model_name} fold {k}")

    # Averaged predictions: out-of-fold val over all training samples; mean of fold test preds.
    avg_val = record("avg", "val", y_train, oof, np.arange(n), oof_proba)
    best_test = None
    if X_test is not None:
        if task == "classification":
            if test_probas:
                mean_proba = np.mean(test_probas, axis=0)
                p_avg = classes[np.argmax(mean_proba, axis=1)]  # type: ignore[index]
            else:  # majority vote
                stacked = np.stack(test_preds)
                mean_proba = None
                p_avg = np.array(
                    [np.unique(c, return_counts=True) for c in stacked.T], dtype=object
                )
                p_avg = np.array(
                    [vals[np.argmax(counts)] for vals, counts in p_avg], dtype=np.float64
                )
            best_test = record("avg", "test", y_test, p_avg, test_idx, mean_proba)["test_score"]  # type: ignore[arg-type]
        else:
            best_test = record("avg", "test", y_test, np.mean(test_preds, axis=0), test_idx)[
                "test_score"
            ]  # type: ignore[arg-type]

    # Refit on all training data: the model a bundle replays.
    final = clone(estimator)
    t0 = time.perf_counter()
    with clock("fit"):
        final.fit(Xt, y_train)
        p_fin = _as_1d(final.predict(Xt))
        pr_fin = aligned_proba(final, Xt) if proba_ok else None
        p_fin_te = _as_1d(final.predict(Xt_test)) if Xt_test is not None else None
        pr_fin_te = aligned_proba(final, Xt_test) if proba_ok and Xt_test is not None else None
    ms = (time.perf_counter() - t0) * 1000
    to_save.append(("fold_final", final, model_class, "model"))
    record("fold_final", "train", y_train, p_fin, np.arange(n), pr_fin)
    if p_fin_te is not None:
        record("fold_final", "test", y_test, p_fin_te, test_idx, pr_fin_te)  # type: ignore[arg-type]
    logs.append(
        dict(
            step_idx=model_idx,
            operator_class=model_class,
            event="end",
            duration_ms=ms,
            message="fold_final",
            details={"n_train": n},
        )
    )
    ctx.progress.advance(1, f"{ds.name}: {preprocessings or '-'} > {model_name} refit")

    best_val = avg_val["val_score"]
    duration_ms = (time.perf_counter() - t_start) * 1000

    item.chain = {
        "steps": [describe_step(s, i) for i, s in enumerate(steps)],
        "model_step_idx": model_idx,
        "model_class": model_class,
        "preprocessings": preprocessings,
        "fold_strategy": "per_fold",
        "model_name": model_name,
        "metric": metric,
        "task_type": task,
        "dataset_name": ds.name,
    }
    item.completion = {
        "best_val": best_val,
        "best_test": best_test,
        "metric": metric,
        "duration_ms": duration_ms,
    }
    return item


def _open_store(workspace: Any) -> tuple[WorkspaceStore, bool]:
    if isinstance(workspace, WorkspaceStore):
        return workspace, False
    if not isinstance(workspace, (str, os.PathLike)):
        raise TypeError(
            f"workspace must be a folder path or a WorkspaceStore, got {type(workspace).__name__}"
        )
    return WorkspaceStore(workspace), True


def run(
    pipeline: Any,
    dataset: Any,
    workspace: str | os.PathLike[str] | WorkspaceStore = "workspace",
    *,
    name: str | None = None,
    cv: int = 5,
    metric: str | None = None,
    task_type: str | None = None,
    random_state: int | None = 0,
    verbose: int = 1,
    commit_every: float = DEFAULT_COMMIT_EVERY,
) -> RunResult:
    """Train and cross-validate scikit-learn pipelines on datasets; record it all in a workspace.

    `pipeline`: steps (transformers then one estimator) or a list of such lists; steps are
    cloned, never mutated. `dataset`: a nirs4all folder, a `Dataset`, `(X, y)`,
    `(X_train, y_train, X_test, y_test)` or a list of those. `workspace`: a folder (opened
    and kept open in the result: `result.close()`) or an open `WorkspaceStore`. `metric`:
    rmse (default, regression), mae, r2, balanced_accuracy (default, classification) or
    accuracy; leaderboards sort by its direction (`metric_ascending`). `verbose=1` shows a
    progress line on stderr and the leaderboard on stdout; 0 prints nothing.
    `commit_every`: fitted pipelines are committed in groups, at the latest when the oldest
    is that many seconds old, and at the end (0: one commit per pipeline). A crash loses at
    most that much training, never committed records.
    """
    pipelines = _normalise_pipelines(pipeline)
    datasets = as_datasets(dataset)
    if isinstance(cv, bool) or not isinstance(cv, int) or cv < 2:
        raise ValueError(f"cv must be an int >= 2 (number of folds), got {cv!r}")
    if task_type is not None and task_type not in DEFAULT_METRIC:
        raise ValueError(
            f"task_type must be 'regression', 'classification' or None, got {task_type!r}"
        )
    check_commit_every(commit_every)
    if verbose not in (0, 1, 2, True, False):
        raise ValueError(f"verbose must be 0 or 1, got {verbose!r}")
    tasks = [_task_of(p, task_type) for p in pipelines]
    if metric is None:
        if len(set(tasks)) > 1:
            raise ValueError(
                "pipelines mix regression and classification; pass task_type= or metric="
            )
        metric = DEFAULT_METRIC[tasks[0]]
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {list(METRICS)}")
    wrong = {t for t in tasks if t != METRICS[metric][1]}
    if wrong:
        raise ValueError(
            f"metric {metric!r} is a {METRICS[metric][1]} metric but the pipelines are "
            f"{sorted(wrong)}"
        )
    for ds in datasets:
        if ds.y_train.ndim != 1:
            raise ValueError(
                f"dataset {ds.name!r} has {ds.y_train.shape[1]} target columns; run() trains on "
                "one target: pass one column of y"
            )
        if cv > len(ds.y_train):
            raise ValueError(
                f"cv={cv} folds but dataset {ds.name!r} has only {len(ds.y_train)} training samples"
            )

    store, owns = _open_store(workspace)
    err = sys.stderr
    clock = _Clock()
    t_run = time.perf_counter()
    labels = [
        " > ".join([*(type(s).__name__ for s in p[:-1]), step_label(p[-1])]) for p in pipelines
    ]
    config = {
        "cv": cv,
        "metric": metric,
        "ascending": metric_ascending(metric),
        "random_state": random_state,
        "task_type": task_type,
        "pipelines": [[describe_step(s, i) for i, s in enumerate(p)] for p in pipelines],
    }
    ds_info = [
        {
            "name": d.name,
            "path": d.source,
            "hash": d.content_hash,
            "n_train": len(d.y_train),
            "n_test": 0 if d.y_test is None else len(d.y_test),
            "n_features": d.n_features,
        }
        for d in datasets
    ]
    try:
        with clock("store"):
            run_id = store.begin_run(name or "run", config=config, datasets=ds_info)
    except BaseException:
        if owns:
            store.close()
        raise
    result = RunResult(run_id=run_id, store=store, metric=metric, owns_store=owns)
    progress = Progress(len(pipelines) * len(datasets) * (cv + 1), enabled=verbose >= 1, stream=err)
    ctx = _Context(store, run_id, cv, metric, random_state, progress, clock, err, int(verbose))

    def failed(item: FittedPipeline, why: str) -> None:
        result.failed[item.pipeline_id] = why
        if verbose:
            err.write(f"\npipeline {item.label} failed: {why}\n")

    recorder = Recorder(store, commit_every=commit_every, on_failed=failed)
    try:
        for ds in datasets:
            for i, (steps, task) in enumerate(zip(pipelines, tasks, strict=False)):
                item = FittedPipeline(
                    pipeline_id=str(uuid.uuid4()),
                    label=f"{labels[i]} on {ds.name}",
                    begin={
                        "run_id": run_id,
                        "name": f"{i:04d}_{labels[i]}",
                        "expanded_config": config["pipelines"][i],
                        "dataset_name": ds.name,
                        "dataset_hash": ds.content_hash,
                    },
                )
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        _run_pipeline(ctx, steps, task, ds, item)
                except Exception as exc:
                    item = FittedPipeline(
                        item.pipeline_id,
                        item.label,
                        item.begin,
                        error=traceback_excerpt(),
                        error_summary=f"{type(exc).__name__}: {exc}",
                    )
                    done = (len(result.pipeline_ids) + 1) * (cv + 1)
                    progress.done = min(progress.total, done)
                result.pipeline_ids.append(item.pipeline_id)
                with clock("store"):
                    recorder.add(item)
        with clock("store"):
            recorder.flush()
        progress.close()
        n_total = len(result.pipeline_ids)
        summary = {
            "pipelines": n_total,
            "completed": n_total - len(result.failed),
            "failed": len(result.failed),
            "metric": metric,
            "duration_ms": (time.perf_counter() - t_run) * 1000,
        }
        with clock("store"):
            if len(result.failed) == n_total:
                first = next(iter(result.failed.values()))
                store.fail_run(run_id, f"all {n_total} pipelines failed; first error: {first}")
                result.status = "failed"
            else:
                if result.failed:
                    summary["failed_pipelines"] = result.failed
                best = result.top(1).to_pylist()
                if best:
                    summary["best"] = {
                        k: best[0][k]
                        for k in (
                            "prediction_id",
                            "chain_id",
                            "pipeline_id",
                            "dataset_name",
                            "model_name",
                            "preprocessings",
                            "val_score",
                        )
                    }
                store.complete_run(run_id, summary=summary)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            recorder.flush()  # keep what was fitted before the interruption
        try:
            store.fail_run(run_id, f"interrupted: {type(exc).__name__}: {exc}")
        finally:
            if owns:
                store.close()
        raise
    result.timings = {
        "wall_s": time.perf_counter() - t_run,
        "store_s": clock.totals["store"],
        "fit_s": clock.totals["fit"],
        "commits": recorder.commits,
    }
    if verbose:
        print_leaderboard(result, n=10)
    return result


def leaderboard_rows(table: pa.Table, metric: str) -> list[dict[str, Any]]:
    """Leaderboard rows (rank, dataset, preprocessing, model, scores, ids) from a top() table."""
    rows = []
    for rank, r in enumerate(table.to_pylist(), start=1):
        score_col = next(
            (c for c in ("val_score", "test_score", "train_score") if r.get(c) is not None),
            "val_score",
        )
        rows.append(
            {
                "rank": rank,
                "dataset": r["dataset_name"],
                "preprocessing": r.get("preprocessings") or "-",
                "model": r["model_name"],
                f"{r['partition']} {metric}": r.get(score_col),
                "chain_id": (r.get("chain_id") or "")[:8],
                "prediction_id": (r.get("prediction_id") or "")[:8],
            }
        )
    return rows


def print_leaderboard(result: RunResult, n: int = 10, stream: TextIO | None = None) -> None:
    """Print the run's cross-validated leaderboard (and the avg test score when there is one)."""
    out = stream or sys.stdout
    table = result.top(n)
    rows = leaderboard_rows(table, result.metric)
    if rows:
        tests = result.store.query_predictions(
            run_id=result.run_id,
            fold_id="avg",
            partition="test",
        ).to_pylist()
        by_chain = {t["chain_id"]: t["test_score"] for t in tests}
        if by_chain:
            full = table.to_pylist()
            for row, r in zip(rows, full, strict=False):
                row[f"test {result.metric}"] = by_chain.get(r["chain_id"])
                row["chain_id"] = row.pop("chain_id")
                row["prediction_id"] = row.pop("prediction_id")
    order = "lower is better" if result.ascending else "higher is better"
    out.write(
        f"\nRun {result.run_id}: {len(result.pipeline_ids)} pipeline(s), "
        f"{len(result.failed)} failed; "
        f"cross-validated {result.metric} ({order})\n"
    )
    out.write((format_table(rows) if rows else "(no completed pipeline)") + "\n")
    out.flush()
