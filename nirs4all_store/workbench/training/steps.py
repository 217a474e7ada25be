"""Pipeline steps: their JSON description, one-line labels, validation and task detection."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "describe_step",
    "json_params",
    "json_safe",
    "normalise_pipelines",
    "qualname",
    "step_label",
    "task_of",
]

# -- step descriptions --------------------------------------------------------------------


def qualname(obj: Any) -> str:
    """`module.Class` of an object's type."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def json_safe(value: Any) -> Any:
    """A JSON-safe copy of a parameter value (estimators as their description, else repr)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if hasattr(value, "get_params") and hasattr(value, "fit"):
        return {"operator_class": qualname(value), "params": json_params(value)}
    return repr(value)


def json_params(step: Any) -> dict[str, Any]:
    """A step's own (not deep) parameters, JSON-safe."""
    return {k: json_safe(v) for k, v in step.get_params(deep=False).items()}


def describe_step(step: Any, step_idx: int) -> dict[str, Any]:
    """The chain's description of one step: {step_idx, operator_class, params}."""
    return {"step_idx": step_idx, "operator_class": qualname(step), "params": json_params(step)}


def step_label(step: Any) -> str:
    """`PLSRegression(n_components=10)`: the class and its non-default parameters, one line."""
    from sklearn import config_context

    with config_context(print_changed_only=True):
        text = repr(step)
    return " ".join(text.split())


# -- input checks -------------------------------------------------------------------------


def normalise_pipelines(pipeline: Any) -> list[list[Any]]:
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


def task_of(steps: list[Any], task_type: str | None) -> str:
    """`task_type` when given, else classification for a classifier, regression otherwise."""
    if task_type is not None:
        return task_type
    from sklearn.base import is_classifier

    return "classification" if is_classifier(steps[-1]) else "regression"
