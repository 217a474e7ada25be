"""Fits of a run dispatched through joblib: workers fit and return, the parent records.

Every (pipeline, dataset) gives one fit per fold plus one for the refit; the fits of the
whole run go, in contiguous chunks, through ONE `Parallel(return_as="generator")` call
(scikit-learn's wrapper, which carries the scikit-learn configuration into the workers), so
20 pipelines x 5 folds keep both cores busy instead of waiting at the end of each pipeline.
Results come back in submission order, so the records (and their order) are the same
whatever `n_jobs` is, and only the parent process talks to the store: DuckDB's one-writer
rule is never in play.

One joblib task is a chunk of several fits (`chunk_size`), not one fit, because what a task
costs besides its fits is of the order of a small fit (~25 ms for PLS on 160 x 1000):
setting the one-BLAS-thread limit (threadpoolctl scans the loaded libraries: 2.7 ms,
measured), pickling the arrays under joblib's 1 MB memmap threshold into the task (X_test,
y, the fold indices; a larger X is written to a memmap once per run and sent by name) and a
round trip through loky's queues. A chunk pays these once, and pickles each array once
(pickle's memo: the same array object in every call of the chunk).

`n_jobs=None` follows joblib's configuration: 1 by default, or what an enclosing
`joblib.parallel_config(backend=..., n_jobs=...)` says (loky processes locally; a dask or
ray backend for a cluster).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from nirs4all_store.workbench.training.cv import FINAL, FoldFit, fit_fold
from nirs4all_store.workbench.training.datasets import Dataset
from nirs4all_store.workbench.training.recording import FittedPipeline

__all__ = ["CHUNKS_PER_WORKER", "Job", "check_n_jobs", "chunk_size", "fit_chunk", "run_jobs"]


@dataclass
class Job:
    """One pipeline on one dataset, with the splits of that dataset."""

    steps: list[Any]
    task: str
    ds: Dataset
    item: FittedPipeline
    splits: list[tuple[np.ndarray, np.ndarray]]

    @property
    def n_tasks(self) -> int:
        return len(self.splits) + 1

    def calls(self) -> Iterator[tuple[Any, ...]]:
        """The `fit_fold` arguments of every fold, then of the refit."""
        ds, task = self.ds, self.task
        classes = np.unique(ds.y_train) if task == "classification" else None
        data = (ds.X_train, ds.y_train, ds.X_test, ds.y_test)
        for k, (tr, va) in enumerate(self.splits):
            yield (self.steps, task, *data, f"fold_{k}", tr, va, classes)
        everything = np.arange(len(ds.y_train))
        yield (self.steps, task, *data, FINAL, everything, None, classes)


def check_n_jobs(n_jobs: Any) -> int | None:
    """None (joblib's default), a positive int, or a negative int (-1: every core)."""
    if n_jobs is None:
        return None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ValueError(f"n_jobs must be None, a positive int or -1 (every core), got {n_jobs!r}")
    return n_jobs


_CHUNKS_SEEN = 0


def _freeze_loky_worker_heap() -> None:
    """In a loky worker, from its second chunk on: `gc.freeze()` what the first one imported.

    Without psutil (not a dependency), a loky worker runs a full `gc.collect()` after a task
    whenever a second has passed since the last one, to limit leaks. With scikit-learn and
    scipy imported that walks ~164,000 objects: 110-134 ms of CPU each time, measured, i.e.
    ~1.5 s of a run of 120 fits of 25 ms, as much CPU as a third of the fits. Frozen objects
    (modules, classes: what lives for the whole process) are skipped by the collector (then
    0 ms); refcounting still frees them, and the collect just before freezing leaves no
    garbage behind. Not done in the caller's process (n_jobs=1, the threading backend)."""
    global _CHUNKS_SEEN
    import multiprocessing

    _CHUNKS_SEEN += 1
    if _CHUNKS_SEEN == 2 and multiprocessing.current_process().name.startswith("LokyProcess"):
        import gc

        gc.collect()
        gc.freeze()


def fit_chunk(calls: list[tuple[Any, ...]]) -> list[FoldFit]:
    """`fit_fold` of every call, in order: one joblib task."""
    from threadpoolctl import threadpool_limits

    _freeze_loky_worker_heap()

    # BLAS/OpenMP on one thread in every fit, with n_jobs=1 as in the workers: the numbers
    # are then the same whatever n_jobs is (float sums split over threads differ in the last
    # bits), and the cores go to n_jobs. Measured on the 2-core machine, 20 pipelines x 5
    # folds of 200 x 1000: 6.1 s with one BLAS thread, 18.4 s with BLAS threads competing.
    with threadpool_limits(limits=1):
        return [fit_fold(*args) for args in calls]


def chunk_size(n_fits: int, n_workers: int, per_job: int) -> int:
    """Fits per joblib task: one job's fits in one process; else about `CHUNKS_PER_WORKER`
    tasks per worker (enough to even out fits of unequal length), never more than a job."""
    if n_workers <= 1:
        return per_job
    return max(1, min(per_job, -(-n_fits // (CHUNKS_PER_WORKER * n_workers))))


#: Tasks per worker: with 4, the worker that finishes last waits for at most ~1/4 of its
#: share; more tasks pay the per-task cost (module docstring) more often.
CHUNKS_PER_WORKER = 4


def _chunks(jobs: list[Job], size: int) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for job in jobs:
        for args in job.calls():
            chunk.append(args)
            if len(chunk) == size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def run_jobs(
    jobs: list[Job],
    n_jobs: int | None,
    on_fit: Callable[[Job, FoldFit], None],
    on_done: Callable[[Job, list[FoldFit]], None],
) -> None:
    """Fit every fold of every job through joblib; `on_fit` per result, `on_done` per job,
    both in submission order, in this (the parent) process."""
    from joblib import effective_n_jobs
    from sklearn.utils.parallel import Parallel, delayed

    if not jobs:
        return
    n_fits = sum(job.n_tasks for job in jobs)
    size = chunk_size(n_fits, effective_n_jobs(n_jobs), max(job.n_tasks for job in jobs))
    tasks = (delayed(fit_chunk)(chunk) for chunk in _chunks(jobs, size))
    parallel = Parallel(n_jobs=n_jobs, return_as="generator", batch_size=1)
    results = (fit for chunk in parallel(tasks) for fit in chunk)
    for job in jobs:
        fits = []
        for _ in range(job.n_tasks):
            fit = next(results)
            on_fit(job, fit)
            fits.append(fit)
        on_done(job, fits)
