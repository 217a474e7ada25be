"""Small NIRS preprocessing transformers scikit-learn lacks.

They are stateless (nothing learnt in `fit`), so a saved artifact of one is just its params,
and they pickle/clone like any scikit-learn estimator (replay of a stored chain needs both).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array

__all__ = ["SNV"]


class SNV(TransformerMixin, BaseEstimator):
    """Standard Normal Variate: centre and scale each spectrum by its own mean and std.

    Removes multiplicative scatter and baseline offsets row by row. A flat spectrum
    (std 0) is only centred, so no NaN appears.
    """

    def __init__(self, with_std: bool = True) -> None:
        self.with_std = with_std

    def fit(self, X: Any, y: Any = None) -> SNV:
        X = check_array(X, dtype=np.float64)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        X = check_array(X, dtype=np.float64, copy=True)
        expected = getattr(self, "n_features_in_", None)
        if expected is not None and X.shape[1] != expected:
            raise ValueError(f"SNV was fitted on {expected} features, got X with {X.shape[1]}")
        X -= X.mean(axis=1, keepdims=True)
        if self.with_std:
            std = X.std(axis=1, keepdims=True)
            std[std == 0.0] = 1.0
            X /= std
        return X

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags
