"""Deterministic NIR-like spectra: the arrays behind `datasets.synthetic_nirs`.

Only numpy is imported here: generating a dataset must not pay for scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["synthetic_arrays"]

# Constituent bands (centre nm, width nm, height) near real overtone/combination bands.
_BANDS: tuple[tuple[tuple[float, float, float], ...], ...] = (
    ((1450.0, 60.0, 1.0), (1940.0, 70.0, 1.6)),  # water
    ((1510.0, 40.0, 0.4), (2050.0, 50.0, 0.6), (2180.0, 40.0, 0.5)),  # protein (the target)
    ((1210.0, 30.0, 0.3), (1725.0, 35.0, 0.5), (2310.0, 30.0, 0.7), (2350.0, 30.0, 0.5)),  # fat
    ((1580.0, 60.0, 0.3), (2100.0, 60.0, 0.7), (2280.0, 50.0, 0.4)),  # starch
)
_MEAN_FRACTIONS = np.array([0.12, 0.12, 0.06, 0.70])
_TASKS = ("regression", "classification")


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def synthetic_arrays(
    n_samples: int = 200,
    n_wavelengths: int = 500,
    *,
    task: str = "regression",
    n_classes: int = 3,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic NIR-like spectra as plain arrays `(X, y, wavelengths)` over 1000-2500 nm.

    Absorbance = scatter * (fractions @ pure band spectra + 0.1) + offset + tilt + noise.
    Regression y is the protein content (%); classification y is 0..n_classes-1 from
    quantiles of a latent protein/fat score, so classes are balanced within one sample.
    """
    n_samples = _check_int(n_samples, "n_samples", 2)
    n_wavelengths = _check_int(n_wavelengths, "n_wavelengths", 10)
    seed = _check_int(seed, "seed", 0)
    if task not in _TASKS:
        raise ValueError(f"task must be one of {_TASKS}, got {task!r}")
    if task == "classification":
        n_classes = _check_int(n_classes, "n_classes", 2)
        if n_classes > n_samples:
            raise ValueError(f"n_classes={n_classes} exceeds n_samples={n_samples}")

    rng = np.random.default_rng(seed)
    wl = np.linspace(1000.0, 2500.0, n_wavelengths)
    pure = np.array(
        [sum(h * np.exp(-0.5 * ((wl - c) / w) ** 2) for c, w, h in bands) for bands in _BANDS]
    )
    # Mass fractions around a typical grain (water, protein, fat, starch), +-40% each, closed
    # to sum 1: as in real samples the composition moves the spectrum a little around a mean
    # spectrum, far less than the scatter does.
    raw = _MEAN_FRACTIONS * rng.uniform(0.6, 1.4, size=(n_samples, len(_BANDS)))
    conc = raw / raw.sum(axis=1, keepdims=True)
    # Light scattering by particles of different size: a multiplicative path-length factor
    # (log-normal, ~+-25%) and an additive offset (and a small tilt) per spectrum. It is what
    # SNV/MSC remove: measured on synthetic_nirs(200, 500, test_fraction=0.25), 5-fold CV RMSE
    # of PLS(5) 0.73 with StandardScaler, 0.18 with SNV, 0.17 with MSC (about 0.2 for all
    # three when the scatter terms are left out).
    scatter = np.exp(rng.normal(0.0, 0.25, size=(n_samples, 1)))
    offset = rng.normal(0.0, 0.1, size=(n_samples, 1))
    slope = rng.normal(0.0, 0.01, size=(n_samples, 1))
    noise = rng.normal(0.0, 0.002, size=(n_samples, n_wavelengths))
    X = scatter * (conc @ pure + 0.1) + offset + slope * ((wl - 1750.0) / 750.0) + noise
    if task == "regression":
        y = 100.0 * conc[:, 1] + rng.normal(0.0, 0.1, size=n_samples)  # protein, %
    else:
        score = conc[:, 1] - 0.5 * conc[:, 2]
        edges = np.quantile(score, np.linspace(0.0, 1.0, n_classes + 1)[1:-1])
        y = np.searchsorted(edges, score, side="right").astype(np.float64)
    return X, y, wl
