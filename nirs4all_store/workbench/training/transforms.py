"""NIRS preprocessing as scikit-learn transformers: SNV, MSC, Savitzky-Golay, detrend, ALS.

Each works row by row on spectra (n_samples x n_wavelengths), clones and pickles like any
scikit-learn estimator (replay of a stored chain needs both). Only MSC learns something in
`fit` (its reference spectrum); the others are stateless and only record the width.
Formulas: SNV, Barnes et al. (1989); MSC, Geladi et al. (1985); Savitzky & Golay (1964) via
`scipy.signal.savgol_filter`; detrend, Barnes et al. (1989) (a polynomial of the wavelength
index removed per spectrum); asymmetric least squares baseline, Eilers & Boelens (2005).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array

__all__ = ["MSC", "SNV", "ALSBaseline", "Detrend", "SavitzkyGolay"]


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


class _RowTransformer(TransformerMixin, BaseEstimator):
    """Shared plumbing: float64 input, width recorded in `fit` and checked in `transform`."""

    def fit(self, X: Any, y: Any = None) -> Any:
        X = check_array(X, dtype=np.float64)
        self.n_features_in_ = X.shape[1]
        self._check_params(X.shape[1])
        return self

    def _check_params(self, n_features: int) -> None:
        """ValueError for parameters that cannot work on `n_features` wavelengths."""

    def _input(self, X: Any) -> np.ndarray:
        X = check_array(X, dtype=np.float64, copy=True)
        expected = getattr(self, "n_features_in_", None)
        if expected is not None and X.shape[1] != expected:
            raise ValueError(
                f"{type(self).__name__} was fitted on {expected} features, got X with {X.shape[1]}"
            )
        return X


class MSC(_RowTransformer):
    """Multiplicative Scatter Correction: x = a + b * ref + e fitted per spectrum by least
    squares, corrected to (x - a) / b. `ref` is the mean training spectrum (learnt in `fit`)
    unless `reference` is given."""

    def __init__(self, reference: Any = None) -> None:
        self.reference = reference

    def fit(self, X: Any, y: Any = None) -> MSC:
        X = check_array(X, dtype=np.float64)
        self.n_features_in_ = X.shape[1]
        ref = X.mean(axis=0) if self.reference is None else np.asarray(self.reference, float)
        if ref.shape != (X.shape[1],):
            raise ValueError(f"MSC reference must have {X.shape[1]} values, got {ref.shape}")
        if np.ptp(ref) == 0.0:
            raise ValueError("MSC reference spectrum is flat: the scatter slope is undefined")
        self.reference_ = ref
        return self

    def transform(self, X: Any) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "reference_")
        X = self._input(X)
        ref = self.reference_ - self.reference_.mean()
        b = (X - X.mean(axis=1, keepdims=True)) @ ref / (ref @ ref)
        a = X.mean(axis=1) - b * self.reference_.mean()
        b[b == 0.0] = 1.0  # a spectrum uncorrelated with the reference: only offset-corrected
        return (X - a[:, None]) / b[:, None]


class SavitzkyGolay(_RowTransformer):
    """Savitzky-Golay smoothing (`deriv=0`) or derivative (`deriv=1, 2`) of each spectrum:
    a local polynomial of degree `polyorder` over `window_length` points (odd), by
    `scipy.signal.savgol_filter` (mode "interp" at the edges); `delta` is the wavelength step
    (derivatives per unit of wavelength, 1.0: per point)."""

    def __init__(
        self, window_length: int = 11, polyorder: int = 2, deriv: int = 0, delta: float = 1.0
    ) -> None:
        self.window_length = window_length
        self.polyorder = polyorder
        self.deriv = deriv
        self.delta = delta

    def _check_params(self, n_features: int) -> None:
        w, p, d = self.window_length, self.polyorder, self.deriv
        if not (isinstance(w, int) and w % 2 == 1 and 3 <= w <= n_features):
            raise ValueError(
                f"window_length must be an odd int in 3..{n_features} (the number of "
                f"wavelengths), got {w!r}"
            )
        if not (isinstance(p, int) and 0 <= p < w):
            raise ValueError(f"polyorder must be an int in 0..{w - 1}, got {p!r}")
        if not (isinstance(d, int) and 0 <= d <= p):
            raise ValueError(f"deriv must be an int in 0..polyorder ({p}), got {d!r}")

    def transform(self, X: Any) -> np.ndarray:
        from scipy.signal import savgol_filter

        X = self._input(X)
        self._check_params(X.shape[1])
        return np.asarray(
            savgol_filter(
                X, self.window_length, self.polyorder, deriv=self.deriv, delta=self.delta, axis=1
            )
        )

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


class Detrend(_RowTransformer):
    """Remove from each spectrum its least-squares polynomial of degree `order` in the
    wavelength index (order 1: linear baseline, order 2: the curvilinear one of Barnes)."""

    def __init__(self, order: int = 1) -> None:
        self.order = order

    def _check_params(self, n_features: int) -> None:
        if not (isinstance(self.order, int) and 0 <= self.order < n_features):
            raise ValueError(f"order must be an int in 0..{n_features - 1}, got {self.order!r}")

    def transform(self, X: Any) -> np.ndarray:
        X = self._input(X)
        self._check_params(X.shape[1])
        t = np.linspace(-1.0, 1.0, X.shape[1])  # scaled index: a well-conditioned Vandermonde
        V = np.vander(t, self.order + 1)
        coef, *_ = np.linalg.lstsq(V, X.T, rcond=None)
        return X - (V @ coef).T

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


class ALSBaseline(_RowTransformer):
    """Asymmetric least squares baseline removed from each spectrum (Eilers & Boelens 2005):
    z minimises sum w_i (x_i - z_i)^2 + lam * sum (second difference of z)^2, with weights
    w_i = p where x_i > z_i and 1 - p elsewhere, re-estimated `n_iter` times."""

    def __init__(self, lam: float = 1e5, p: float = 0.01, n_iter: int = 10) -> None:
        self.lam = lam
        self.p = p
        self.n_iter = n_iter

    def _check_params(self, n_features: int) -> None:
        if not self.lam > 0:
            raise ValueError(f"lam must be > 0, got {self.lam!r}")
        if not 0 < self.p < 1:
            raise ValueError(f"p must be in (0, 1), got {self.p!r}")
        if not (isinstance(self.n_iter, int) and self.n_iter >= 1):
            raise ValueError(f"n_iter must be an int >= 1, got {self.n_iter!r}")
        if n_features < 3:
            raise ValueError(f"ALSBaseline needs at least 3 wavelengths, got {n_features}")

    def baseline(self, x: np.ndarray) -> np.ndarray:
        """The baseline z of one spectrum."""
        from scipy import sparse
        from scipy.sparse.linalg import spsolve

        n = len(x)
        D = sparse.diags([1.0, -2.0, 1.0], [0, 1, 2], shape=(n - 2, n))
        penalty = self.lam * (D.T @ D)
        w = np.ones(n)
        z = x
        for _ in range(self.n_iter):
            z = spsolve(sparse.csc_matrix(sparse.diags(w) + penalty), w * x)
            w = np.where(x > z, self.p, 1.0 - self.p)
        return np.asarray(z)

    def transform(self, X: Any) -> np.ndarray:
        X = self._input(X)
        self._check_params(X.shape[1])
        return X - np.array([self.baseline(row) for row in X])

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags
