"""Metrics of a training run: the scoring functions, their direction and the score columns."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = [
    "DEFAULT_METRIC",
    "METRICS",
    "SCORE_COLUMN",
    "metric_ascending",
    "scores",
]


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


def scores(task: str, y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """Every metric of `task` on (y, p); a non-finite score is None."""
    out: dict[str, float | None] = {}
    for name, (fn, metric_task, _) in METRICS.items():
        if metric_task == task:
            value = fn(y, p)
            out[name] = value if math.isfinite(value) else None
    return out
