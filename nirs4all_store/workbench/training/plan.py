"""The checked arguments of one `run()`: pipelines (grids expanded), datasets, metric, splits.

Every check happens here, before a workspace is opened or anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nirs4all_store.workbench.training.datasets import Dataset, as_datasets
from nirs4all_store.workbench.training.grid import expand_grids, normalise_grid_pipelines
from nirs4all_store.workbench.training.metrics import DEFAULT_METRIC, check_metric
from nirs4all_store.workbench.training.recording import check_commit_every
from nirs4all_store.workbench.training.splitting import (
    check_cv_argument,
    make_splits,
    resolve_groups,
)
from nirs4all_store.workbench.training.steps import task_of

__all__ = ["Plan", "check_arguments"]


@dataclass
class Plan:
    """The checked arguments of one `run()`."""

    pipelines: list[list[Any]]
    datasets: list[Dataset]
    tasks: list[str]
    metric: str
    splits: dict[str, list[tuple[Any, Any]]]  # dataset name -> (train, val) index pairs
    choices: list[dict[str, Any] | None]  # per pipeline: the grid values it was expanded from


def _resolve_metric(tasks: list[str], metric: str | None) -> str:
    if metric is None:
        if len(set(tasks)) > 1:
            raise ValueError(
                "pipelines mix regression and classification; pass task_type= or metric="
            )
        metric = DEFAULT_METRIC[tasks[0]]
    return check_metric(metric, tasks)


def check_arguments(
    pipeline: Any,
    dataset: Any,
    *,
    cv: Any,
    groups: Any,
    metric: str | None,
    task_type: str | None,
    random_state: int | None,
    verbose: int,
    commit_every: float,
) -> Plan:
    """Every argument check of `run()`, in order, before anything is opened or written."""
    pipelines, choices = expand_grids(normalise_grid_pipelines(pipeline))
    datasets = as_datasets(dataset)
    check_cv_argument(cv)
    if not isinstance(cv, int) and not hasattr(cv, "split"):
        cv = list(cv)  # an iterable of splits: read once, used for every dataset
    if task_type is not None and task_type not in DEFAULT_METRIC:
        raise ValueError(
            f"task_type must be 'regression', 'classification' or None, got {task_type!r}"
        )
    check_commit_every(commit_every)
    if verbose not in (0, 1, 2, True, False):
        raise ValueError(f"verbose must be 0 or 1, got {verbose!r}")
    tasks = [task_of(p, task_type) for p in pipelines]
    metric = _resolve_metric(tasks, metric)
    splits = {}
    for ds in datasets:
        if ds.y_train.ndim != 1:
            raise ValueError(
                f"dataset {ds.name!r} has {ds.y_train.shape[1]} target columns; run() trains on "
                "one target: pass one column of y"
            )
        ds_groups = resolve_groups(groups, ds.metadata, len(ds.y_train), ds.name)
        task = tasks[0] if len(set(tasks)) == 1 else "regression"
        try:
            splits[ds.name] = make_splits(cv, task, ds.X_train, ds.y_train, ds_groups, random_state)
        except ValueError as exc:
            raise ValueError(f"dataset {ds.name!r}: {exc}") from None
    return Plan(pipelines, datasets, tasks, metric, splits, choices)
