"""Fits of a run dispatched through joblib: workers fit and return, the parent records.

Every (pipeline, dataset) gives one task per fold plus one for the refit; the tasks of the
whole run go through ONE `Parallel(return_as="generator")` call (scikit-learn's wrapper,
which carries the scikit-learn configuration into the workers), so 20 pipelines x 5 folds
keep both cores busy instead of waiting at the end of each pipeline. Results come back in
submission order, so the records (and their order) are the same whatever `n_jobs` is, and
only the parent process talks to the store: DuckDB's one-writer rule is never in play.

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

__all__ = ["Job", "check_n_jobs", "run_jobs"]


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
        ds = self.ds
        classes = np.unique(ds.y_train) if self.task == "classification" else None
        for k, (tr, va) in enumerate(self.splits):
            yield (self.steps, ds.X_train, ds.y_train, ds.X_test, f"fold_{k}", tr, va, classes)
        everything = np.arange(len(ds.y_train))
        yield (self.steps, ds.X_train, ds.y_train, ds.X_test, FINAL, everything, None, classes)


def check_n_jobs(n_jobs: Any) -> int | None:
    """None (joblib's default), a positive int, or a negative int (-1: every core)."""
    if n_jobs is None:
        return None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ValueError(f"n_jobs must be None, a positive int or -1 (every core), got {n_jobs!r}")
    return n_jobs


def run_jobs(
    jobs: list[Job],
    n_jobs: int | None,
    on_fit: Callable[[Job, FoldFit], None],
    on_done: Callable[[Job, list[FoldFit]], None],
) -> None:
    """Fit every fold of every job through joblib; `on_fit` per result, `on_done` per job,
    both in submission order, in this (the parent) process."""
    from sklearn.utils.parallel import Parallel, delayed

    calls = (delayed(fit_fold)(*args) for job in jobs for args in job.calls())
    results = iter(Parallel(n_jobs=n_jobs, return_as="generator")(calls))
    for job in jobs:
        fits = []
        for _ in range(job.n_tasks):
            fit = next(results)
            on_fit(job, fit)
            fits.append(fit)
        on_done(job, fits)
