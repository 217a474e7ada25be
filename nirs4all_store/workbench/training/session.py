"""`run()`: cross-validated training sessions on scikit-learn, recorded into a workspace.

Built only on the public `WorkspaceStore` API. Per (pipeline, dataset): the transformers are
fitted on the whole training part (shared artifacts), the estimator is cross-validated (one
artifact per fold) and refitted on all training data (`fold_final`); see `cv` for the
predictions this records.

Fitting happens in `cv.run_pipeline`; recording is `recording.Recorder`'s job: fitted
pipelines are committed in groups, each group in ONE transaction with one bulk call per table.
An exception inside one pipeline (fitting or recording it) fails that pipeline only.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from nirs4all_store.store import WorkspaceStore
from nirs4all_store.workbench.progress import Progress
from nirs4all_store.workbench.training.cv import Clock, RunContext, run_pipeline
from nirs4all_store.workbench.training.datasets import Dataset, as_datasets
from nirs4all_store.workbench.training.metrics import (
    DEFAULT_METRIC,
    METRICS,
    SCORE_COLUMN,
    metric_ascending,
)
from nirs4all_store.workbench.training.recording import (
    DEFAULT_COMMIT_EVERY,
    FittedPipeline,
    Recorder,
    check_commit_every,
    traceback_excerpt,
)
from nirs4all_store.workbench.training.result import (
    RunResult,
    leaderboard_rows,
    print_leaderboard,
)
from nirs4all_store.workbench.training.steps import (
    describe_step,
    normalise_pipelines,
    step_label,
    task_of,
)

__all__ = [
    "DEFAULT_METRIC",
    "METRICS",
    "SCORE_COLUMN",
    "RunResult",
    "describe_step",
    "leaderboard_rows",
    "metric_ascending",
    "print_leaderboard",
    "run",
    "step_label",
]


@dataclass
class _Plan:
    """The checked arguments of one `run()`."""

    pipelines: list[list[Any]]
    datasets: list[Dataset]
    tasks: list[str]
    metric: str


def _resolve_metric(tasks: list[str], metric: str | None) -> str:
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
    return metric


def _check_arguments(
    pipeline: Any,
    dataset: Any,
    *,
    cv: int,
    metric: str | None,
    task_type: str | None,
    verbose: int,
    commit_every: float,
) -> _Plan:
    """Every argument check of `run()`, in order, before anything is opened or written."""
    pipelines = normalise_pipelines(pipeline)
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
    tasks = [task_of(p, task_type) for p in pipelines]
    metric = _resolve_metric(tasks, metric)
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
    return _Plan(pipelines, datasets, tasks, metric)


def _open_store(workspace: Any) -> tuple[WorkspaceStore, bool]:
    """(store, owned): an open `WorkspaceStore` as is, a folder path opened (and owned)."""
    if isinstance(workspace, WorkspaceStore):
        return workspace, False
    if not isinstance(workspace, (str, os.PathLike)):
        raise TypeError(
            f"workspace must be a folder path or a WorkspaceStore, got {type(workspace).__name__}"
        )
    return WorkspaceStore(workspace), True


def _run_config(
    plan: _Plan, cv: int, random_state: int | None, task_type: str | None
) -> dict[str, Any]:
    return {
        "cv": cv,
        "metric": plan.metric,
        "ascending": metric_ascending(plan.metric),
        "random_state": random_state,
        "task_type": task_type,
        "pipelines": [[describe_step(s, i) for i, s in enumerate(p)] for p in plan.pipelines],
    }


def _dataset_info(datasets: list[Dataset]) -> list[dict[str, Any]]:
    return [
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


def _begin_run(
    store: WorkspaceStore,
    owns: bool,
    clock: Clock,
    name: str,
    config: dict[str, Any],
    datasets: list[Dataset],
) -> str:
    """`begin_run`; a store `run()` opened is closed again when that fails."""
    ds_info = _dataset_info(datasets)
    try:
        with clock("store"):
            return store.begin_run(name, config=config, datasets=ds_info)
    except BaseException:
        if owns:
            store.close()
        raise


def _on_failed(
    result: RunResult, verbose: int, err: TextIO
) -> Callable[[FittedPipeline, str], None]:
    def failed(item: FittedPipeline, why: str) -> None:
        result.failed[item.pipeline_id] = why
        if verbose:
            err.write(f"\npipeline {item.label} failed: {why}\n")

    return failed


def _train_one(
    ctx: RunContext, steps: list[Any], task: str, ds: Dataset, item: FittedPipeline, done: int
) -> FittedPipeline:
    """`item` filled by `run_pipeline`, or a failed item when fitting raised (`done`
    pipelines were trained before this one: the progress line jumps past it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_pipeline(ctx, steps, task, ds, item)
    except Exception as exc:
        item = FittedPipeline(
            item.pipeline_id,
            item.label,
            item.begin,
            error=traceback_excerpt(),
            error_summary=f"{type(exc).__name__}: {exc}",
        )
        ctx.progress.done = min(ctx.progress.total, (done + 1) * (ctx.cv + 1))
    return item


def _train_all(
    ctx: RunContext,
    plan: _Plan,
    config: dict[str, Any],
    labels: list[str],
    result: RunResult,
    recorder: Recorder,
) -> None:
    """Every (dataset, pipeline): fitted, then handed to the recorder."""
    for ds in plan.datasets:
        for i, (steps, task) in enumerate(zip(plan.pipelines, plan.tasks, strict=False)):
            item = FittedPipeline(
                pipeline_id=str(uuid.uuid4()),
                label=f"{labels[i]} on {ds.name}",
                begin={
                    "run_id": ctx.run_id,
                    "name": f"{i:04d}_{labels[i]}",
                    "expanded_config": config["pipelines"][i],
                    "dataset_name": ds.name,
                    "dataset_hash": ds.content_hash,
                },
            )
            item = _train_one(ctx, steps, task, ds, item, len(result.pipeline_ids))
            result.pipeline_ids.append(item.pipeline_id)
            with ctx.clock("store"):
                recorder.add(item)


def _finish_run(ctx: RunContext, result: RunResult, t_run: float) -> None:
    """`complete_run` with the summary, or `fail_run` when every pipeline failed."""
    store, run_id = ctx.store, ctx.run_id
    n_total = len(result.pipeline_ids)
    summary = {
        "pipelines": n_total,
        "completed": n_total - len(result.failed),
        "failed": len(result.failed),
        "metric": ctx.metric,
        "duration_ms": (time.perf_counter() - t_run) * 1000,
    }
    with ctx.clock("store"):
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


def _abort_run(ctx: RunContext, recorder: Recorder, owns: bool, exc: BaseException) -> None:
    """After an interruption: keep what was fitted, mark the run failed, close an owned store."""
    with contextlib.suppress(Exception):
        recorder.flush()  # keep what was fitted before the interruption
    try:
        ctx.store.fail_run(ctx.run_id, f"interrupted: {type(exc).__name__}: {exc}")
    finally:
        if owns:
            ctx.store.close()


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
    plan = _check_arguments(
        pipeline,
        dataset,
        cv=cv,
        metric=metric,
        task_type=task_type,
        verbose=verbose,
        commit_every=commit_every,
    )
    store, owns = _open_store(workspace)
    err = sys.stderr
    clock = Clock()
    t_run = time.perf_counter()
    labels = [
        " > ".join([*(type(s).__name__ for s in p[:-1]), step_label(p[-1])]) for p in plan.pipelines
    ]
    config = _run_config(plan, cv, random_state, task_type)
    run_id = _begin_run(store, owns, clock, name or "run", config, plan.datasets)
    result = RunResult(run_id=run_id, store=store, metric=plan.metric, owns_store=owns)
    n_steps = len(plan.pipelines) * len(plan.datasets) * (cv + 1)
    progress = Progress(n_steps, enabled=verbose >= 1, stream=err)
    ctx = RunContext(
        store, run_id, cv, plan.metric, random_state, progress, clock, err, int(verbose)
    )
    recorder = Recorder(
        store, commit_every=commit_every, on_failed=_on_failed(result, verbose, err)
    )
    try:
        _train_all(ctx, plan, config, labels, result, recorder)
        with clock("store"):
            recorder.flush()
        progress.close()
        _finish_run(ctx, result, t_run)
    except BaseException as exc:
        _abort_run(ctx, recorder, owns, exc)
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
