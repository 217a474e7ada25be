"""Search spaces: a parameter grid per step, expanded into pipelines before the run.

`Grid(PLSRegression(), {"n_components": [5, 10, 15]})` in place of a step stands for one
pipeline per point of scikit-learn's `ParameterGrid` (a dict: the product of its lists; a
list of dicts: the union of their products). Several grid steps in one pipeline multiply.
Each expanded pipeline records its choices in `pipelines.generator_choices`:
`[{"step_idx": 1, "operator_class": "PLSRegression", "params": {"n_components": 5}}]`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from nirs4all_store.workbench.training.steps import json_safe, normalise_pipelines

__all__ = ["Grid", "expand_grids", "normalise_grid_pipelines"]


class Grid:
    """A step with a parameter grid (scikit-learn `ParameterGrid` semantics)."""

    def __init__(self, step: Any, grid: Mapping[str, Sequence[Any]] | Sequence[Any]) -> None:
        from sklearn.model_selection import ParameterGrid

        if not hasattr(step, "get_params") or not hasattr(step, "fit"):
            raise TypeError(f"Grid needs a scikit-learn step, got {step!r}")
        try:
            points = list(ParameterGrid(grid))  # type: ignore[arg-type]
        except TypeError as exc:
            raise TypeError(
                f"Grid of {type(step).__name__}: {exc}; expected a dict of parameter -> list "
                "of values (or a list of such dicts)"
            ) from None
        known = set(step.get_params(deep=True))
        for point in points:
            unknown = sorted(set(point) - known)
            if unknown:
                raise ValueError(
                    f"Grid of {type(step).__name__}: unknown parameter(s) {unknown}; "
                    f"expected some of {sorted(known)}"
                )
        if not points:
            raise ValueError(f"Grid of {type(step).__name__} is empty")
        self.step = step
        self.grid = grid
        self.points = points

    # Duck-typing of a step, so that pipeline validation accepts a Grid in any position.
    def fit(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - never fitted
        raise TypeError("a Grid is expanded by run(), it is never fitted itself")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return self.step.get_params(deep=deep)

    def __getattr__(self, name: str) -> Any:
        if name in ("transform", "predict", "predict_proba", "_estimator_type"):
            return getattr(self.step, name)
        raise AttributeError(name)

    def __sklearn_tags__(self) -> Any:
        return self.step.__sklearn_tags__()

    def __repr__(self) -> str:
        return f"Grid({self.step!r}, {self.grid!r})"


def normalise_grid_pipelines(pipeline: Any) -> list[list[Any]]:
    """`normalise_pipelines` that accepts `Grid` steps."""
    return normalise_pipelines(pipeline)


def expand_grids(
    pipelines: list[list[Any]],
) -> tuple[list[list[Any]], list[list[dict[str, Any]] | None]]:
    """(expanded pipelines, their choices: None for a pipeline without grid)."""
    from sklearn.base import clone

    out: list[list[Any]] = []
    choices: list[list[dict[str, Any]] | None] = []
    for steps in pipelines:
        grid_at = [i for i, s in enumerate(steps) if isinstance(s, Grid)]
        if not grid_at:
            out.append(steps)
            choices.append(None)
            continue
        for combo in itertools.product(*(steps[i].points for i in grid_at)):
            new = list(steps)
            picked = []
            for i, params in zip(grid_at, combo, strict=True):
                new[i] = clone(steps[i].step).set_params(**params)
                picked.append(
                    {
                        "step_idx": i,
                        "operator_class": type(steps[i].step).__name__,
                        "params": json_safe(dict(params)),
                    }
                )
            out.append(new)
            choices.append(picked)
    return out, choices
