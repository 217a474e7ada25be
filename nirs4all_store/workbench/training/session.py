"""`run()`: cross-validated training sessions on scikit-learn, recorded into a workspace.

Built only on the public `WorkspaceStore` API. Per (pipeline, dataset): every fold fits the
whole pipeline on its training part (`cv.fit_fold`, dispatched through joblib by
`parallel.run_jobs`), then the refit on all training data (`fold_final`); see `cv` for the
predictions this records. Workers only fit; this process records: `recording.Recorder`
commits fitted pipelines in groups, each group in ONE transaction with one bulk call per
table. An exception inside one pipeline (fitting or recording it) fails that pipeline only.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from nirs4all_store.store import WorkspaceStore
from nirs4all_store.workbench.progress import Progress
from nirs4all_store.workbench.training.cv import FoldFit, assemble
from nirs4all_store.workbench.training.datasets import Dataset
from nirs4all_store.workbench.training.metrics import (
    DEFAULT_METRIC,
    METRICS,
    SCORE_COLUMN,
    metric_ascending,
)
from nirs4all_store.workbench.training.parallel import Job, check_n_jobs, run_jobs
from nirs4all_store.workbench.training.plan import Plan, check_arguments
from nirs4all_store.workbench.training.recording import (
    DEFAULT_COMMIT_EVERY,
    FittedPipeline,
    Recorder,
)
from nirs4all_store.workbench.training.result import (
    RunResult,
    leaderboard_rows,
    print_leaderboard,
)
from nirs4all_store.workbench.training.splitting import (
    describe_cv,
)
from nirs4all_store.workbench.training.steps import (
    describe_step,
    step_label,
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


def _open_store(workspace: Any) -> tuple[WorkspaceStore, bool]:
    """(store, owned): an open `WorkspaceStore` as is, a folder path opened (and owned)."""
    if isinstance(workspace, WorkspaceStore):
        return workspace, False
    if not isinstance(workspace, (str, os.PathLike)):
        raise TypeError(
            f"workspace must be a folder path or a WorkspaceStore, got {type(workspace).__name__}"
        )
    return WorkspaceStore(workspace), True


class Clock:
    """Wall time spent in the store vs fitting, for the benchmark and the run summary."""

    def __init__(self) -> None:
        self.totals = {"store": 0.0, "fit": 0.0}

    @contextlib.contextmanager
    def __call__(self, what: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.totals[what] += time.perf_counter() - t0


@dataclass
class RunContext:
    """What the pipelines of one run share: the store, the run, the metric, progress."""

    store: WorkspaceStore
    run_id: str
    metric: str
    progress: Progress
    clock: Clock
    err: TextIO


def _run_config(
    plan: Plan, cv: Any, groups: Any, random_state: int | None, task_type: str | None
) -> dict[str, Any]:
    return {
        "cv": cv if isinstance(cv, int) else describe_cv(cv, groups)["splitter"],
        "splitting": {
            **describe_cv(cv, groups),
            "n_splits": {name: len(s) for name, s in plan.splits.items()},
        },
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
            "wavelengths": None if d.wavelengths is None else d.wavelengths.tolist(),
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
    result: RunResult, verbose: int, err: TextIO, progress: Progress
) -> Callable[[FittedPipeline, str], None]:
    def failed(item: FittedPipeline, why: str) -> None:
        result.failed[item.pipeline_id] = why
        if verbose:
            progress.write(f"pipeline {item.label} failed: {why}\n", err)

    return failed


def _jobs(ctx: RunContext, plan: Plan, config: dict[str, Any], labels: list[str]) -> list[Job]:
    """One job per (dataset, pipeline), in that order, with an empty item to fill."""
    jobs = []
    for ds in plan.datasets:
        for i, (steps, task) in enumerate(zip(plan.pipelines, plan.tasks, strict=True)):
            item = FittedPipeline(
                pipeline_id=str(uuid.uuid4()),
                label=f"{labels[i]} on {ds.name}",
                begin={
                    "run_id": ctx.run_id,
                    "name": f"{i:04d}_{labels[i]}",
                    "expanded_config": config["pipelines"][i],
                    "generator_choices": plan.choices[i],
                    "dataset_name": ds.name,
                    "dataset_hash": ds.content_hash,
                },
            )
            jobs.append(Job(steps, task, ds, item, plan.splits[ds.name]))
    return jobs


def _train_all(
    ctx: RunContext, jobs: list[Job], n_jobs: int | None, result: RunResult, recorder: Recorder
) -> None:
    """Every job fitted through joblib, then handed to the recorder (in the parent)."""

    def on_fit(job: Job, fit: FoldFit) -> None:
        ctx.clock.totals["fit"] += fit.seconds
        ctx.progress.advance(1, f"{job.ds.name}: {job.item.label} {fit.fold_id}")

    def on_done(job: Job, fits: list[FoldFit]) -> None:
        item = assemble(job.steps, job.task, job.ds, ctx.metric, job.item, fits)
        job.item = FittedPipeline(item.pipeline_id, item.label, item.begin)  # free the fits
        result.pipeline_ids.append(item.pipeline_id)
        with ctx.clock("store"):
            recorder.add(item)

    run_jobs(jobs, n_jobs, on_fit, on_done)


def _finish_run(ctx: RunContext, result: RunResult, t_run: float) -> None:
    """`complete_run` with the summary, or `fail_run` when every pipeline failed."""
    store, run_id = ctx.store, ctx.run_id
    n_total = len(result.pipeline_ids)
    summary: dict[str, Any] = {
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
            return
        if result.failed:
            summary["failed_pipelines"] = result.failed
        best = result.top(1).to_pylist()
        if best:
            keys = ("prediction_id", "chain_id", "pipeline_id", "dataset_name", "model_name")
            summary["best"] = {k: best[0][k] for k in (*keys, "preprocessings", "val_score")}
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


def _template_pipelines(pipeline: Any, workspace: Any) -> Any:
    """A template name of the workspace's `PipelineLibrary` as its pipelines; else as given."""
    if not isinstance(pipeline, str):
        return pipeline
    from nirs4all_store.workbench.library import PipelineLibrary, template_pipelines

    if not isinstance(workspace, (WorkspaceStore, str, os.PathLike)):
        raise TypeError(
            f"workspace must be a folder path or a WorkspaceStore, got {type(workspace).__name__}"
        )
    library = PipelineLibrary(workspace)
    with library:
        return template_pipelines(library, pipeline)


def run(
    pipeline: Any,
    dataset: Any,
    workspace: str | os.PathLike[str] | WorkspaceStore = "workspace",
    *,
    name: str | None = None,
    cv: Any = 5,
    groups: Any = None,
    metric: str | None = None,
    task_type: str | None = None,
    random_state: int | None = 0,
    n_jobs: int | None = None,
    verbose: int = 1,
    commit_every: float = DEFAULT_COMMIT_EVERY,
) -> RunResult:
    """Train and cross-validate scikit-learn pipelines on datasets; record it all in a workspace.

    `pipeline`: steps (transformers then one estimator; a `Grid(step, {...})` expands), a
    list of such lists, or the name of a template of the workspace's `PipelineLibrary`.
    Steps are cloned, never mutated; every fold fits the whole pipeline on its training part.
    `dataset`: a nirs4all folder, a `Dataset`, `(X, y)`, `(X_train, y_train, X_test,
    y_test)` or a list of those. `cv`: an int, a scikit-learn splitter or an iterable of
    (train, val) index pairs; `groups`: an array (one dataset) or a metadata column name.
    `metric`: rmse (default, regression), mae, r2, sep, rpd, rpiq; balanced_accuracy
    (default, classification), accuracy, f1. `n_jobs`: joblib workers (None: joblib's
    configuration). `verbose=1` shows progress (tqdm) on stderr and the leaderboard on
    stdout; 0 prints nothing. `commit_every`: seconds between grouped commits (0: one commit
    per pipeline); a crash loses at most that much training, never committed records.
    """
    pipeline = _template_pipelines(pipeline, workspace)
    plan = check_arguments(
        pipeline,
        dataset,
        cv=cv,
        groups=groups,
        metric=metric,
        task_type=task_type,
        random_state=random_state,
        verbose=verbose,
        commit_every=commit_every,
    )
    n_jobs = check_n_jobs(n_jobs)
    store, owns = _open_store(workspace)
    err = sys.stderr
    clock = Clock()
    t_run = time.perf_counter()
    labels = [
        " > ".join([*(type(s).__name__ for s in p[:-1]), step_label(p[-1])]) for p in plan.pipelines
    ]
    config = _run_config(plan, cv, groups, random_state, task_type)
    run_id = _begin_run(store, owns, clock, name or "run", config, plan.datasets)
    result = RunResult(run_id=run_id, store=store, metric=plan.metric, owns_store=owns)
    n_fits = sum(len(plan.splits[d.name]) + 1 for d in plan.datasets) * len(plan.pipelines)
    progress = Progress(n_fits, enabled=verbose >= 1, stream=err)
    ctx = RunContext(store, run_id, plan.metric, progress, clock, err)
    recorder = Recorder(
        store, commit_every=commit_every, on_failed=_on_failed(result, verbose, err, progress)
    )
    try:
        _train_all(ctx, _jobs(ctx, plan, config, labels), n_jobs, result, recorder)
        with clock("store"):
            recorder.flush()
        progress.close()
        _finish_run(ctx, result, t_run)
    except BaseException as exc:
        progress.close()
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
