"""Metrics of a training run: `sklearn.metrics` plus the chemometric set, their direction.

Regression (every partition): rmse, mae, r2 (scikit-learn), and the chemometric figures of
ISO 12099 / Bellon-Maurel et al. (2010), with residuals e = y_pred - y_true:
- bias = mean(e);
- sep = sqrt(sum((e - bias)^2) / (n - 1)), the bias-corrected standard error of prediction;
- rpd = std(y_true, ddof=1) / sep (ratio of performance to deviation);
- rpiq = (Q3 - Q1 of y_true) / rmse (ratio of performance to inter-quartile distance);
- slope = cov(y_true, y_pred) / var(y_pred): slope b of the ISO 12099 fit y_true = a + b y_pred.
RMSEC, RMSECV and RMSEP are `rmse` on the refit model's train partition, on the
cross-validated (fold `avg`) val partition and on the test partition.

Classification: accuracy, balanced_accuracy, f1 (macro over the classes present), and
`confusion_matrix` (rows true class, columns predicted, over the sorted labels of y_true and
y_pred) kept in `scores` but not a ranking metric.

`bias` and `slope` have an ideal value (0, 1), not a direction: they are reported in every
prediction's `scores` but cannot rank a leaderboard.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_METRIC",
    "METRICS",
    "RANKING_METRICS",
    "SCORE_COLUMN",
    "check_metric",
    "chemometric_scores",
    "metric_ascending",
    "scores",
]


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import mean_squared_error

    return float(np.sqrt(mean_squared_error(y, p)))


def _mae(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import mean_absolute_error

    return float(mean_absolute_error(y, p))


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import r2_score

    if len(y) < 2 or float(np.ptp(y)) == 0.0:
        return math.nan  # undefined (scikit-learn warns and returns nan or 0 here)
    return float(r2_score(y, p))


def _bias(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(p - y))


def _sep(y: np.ndarray, p: np.ndarray) -> float:
    if len(y) < 2:
        return math.nan
    e = p - y
    return float(np.sqrt(np.sum((e - e.mean()) ** 2) / (len(y) - 1)))


def _rpd(y: np.ndarray, p: np.ndarray) -> float:
    sep = _sep(y, p)
    if not sep > 0.0:
        return math.nan
    return float(np.std(y, ddof=1) / sep)


def _rpiq(y: np.ndarray, p: np.ndarray) -> float:
    rmse = _rmse(y, p)
    if not rmse > 0.0:
        return math.nan
    q1, q3 = np.percentile(y, [25.0, 75.0])
    return float((q3 - q1) / rmse)


def _slope(y: np.ndarray, p: np.ndarray) -> float:
    var = float(np.var(p, ddof=1)) if len(p) > 1 else 0.0
    if var == 0.0:
        return math.nan
    return float(np.cov(y, p, ddof=1)[0, 1] / var)


def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y, p))


def _balanced_accuracy(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, p))


def _f1(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, p, average="macro", zero_division=0))


#: name -> (function, task, higher_is_better or None for a metric with an ideal value).
#: Scores are stored as computed; the direction decides the order of leaderboards.
METRICS: dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], str, bool | None]] = {
    "rmse": (_rmse, "regression", False),
    "mae": (_mae, "regression", False),
    "r2": (_r2, "regression", True),
    "sep": (_sep, "regression", False),
    "rpd": (_rpd, "regression", True),
    "rpiq": (_rpiq, "regression", True),
    "bias": (_bias, "regression", None),
    "slope": (_slope, "regression", None),
    "accuracy": (_accuracy, "classification", True),
    "balanced_accuracy": (_balanced_accuracy, "classification", True),
    "f1": (_f1, "classification", True),
}
RANKING_METRICS = tuple(name for name, (_, _, higher) in METRICS.items() if higher is not None)
DEFAULT_METRIC = {"regression": "rmse", "classification": "balanced_accuracy"}
SCORE_COLUMN = {"train": "train_score", "val": "val_score", "test": "test_score"}


def metric_ascending(metric: str) -> bool:
    """True when lower is better (rmse, mae, sep): the sort order of a leaderboard."""
    if metric not in METRICS or METRICS[metric][2] is None:
        return True  # unknown (e.g. adopted legacy) metric: error-like by default
    return not METRICS[metric][2]


def check_metric(metric: str, tasks: list[str]) -> str:
    """`metric` when it can rank pipelines of `tasks`; ValueError naming what is expected."""
    if metric in ("bias", "slope"):
        raise ValueError(
            f"metric {metric!r} has an ideal value, not a direction, so it cannot rank "
            f"pipelines; it is in every prediction's scores. Rank by one of {list(RANKING_METRICS)}"
        )
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {list(RANKING_METRICS)}")
    wrong = {t for t in tasks if t != METRICS[metric][1]}
    if wrong:
        raise ValueError(
            f"metric {metric!r} is a {METRICS[metric][1]} metric but the pipelines are "
            f"{sorted(wrong)}"
        )
    return metric


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def scores(task: str, y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """Every metric of `task` on (y, p); a non-finite score is None. Classification adds
    `confusion_matrix` (list of rows) and `labels` (its row/column order)."""
    out: dict[str, Any] = {}
    for name, (fn, metric_task, _) in METRICS.items():
        if metric_task == task:
            out[name] = _finite(fn(y, p))
    if task == "classification":
        from sklearn.metrics import confusion_matrix

        labels = np.unique(np.concatenate([y, p]))
        out["confusion_matrix"] = confusion_matrix(y, p, labels=labels).tolist()
        out["labels"] = labels.tolist()
    return out


def chemometric_scores(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """The regression set on arrays (rmse, mae, r2, sep, rpd, rpiq, bias, slope)."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    return scores("regression", y, p)
