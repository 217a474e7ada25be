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

    Absorbance = scatter * (concentrations @ pure band spectra) + offset + sloped baseline +
    noise. Regression y is the protein content (%); classification y is 0..n_classes-1 from
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
    conc = rng.uniform(0.1, 1.0, size=(n_samples, len(_BANDS)))
    scatter = rng.normal(1.0, 0.04, size=(n_samples, 1))
    offset = rng.normal(0.0, 0.05, size=(n_samples, 1))
    slope = rng.normal(0.0, 0.05, size=(n_samples, 1))
    noise = rng.normal(0.0, 0.004, size=(n_samples, n_wavelengths))
    X = scatter * (conc @ pure) + offset + slope * ((wl - 1750.0) / 750.0) + noise + 0.2
    if task == "regression":
        y = 8.0 + 12.0 * conc[:, 1] + rng.normal(0.0, 0.1, size=n_samples)
    else:
        score = conc[:, 1] - 0.5 * conc[:, 2]
        edges = np.quantile(score, np.linspace(0.0, 1.0, n_classes + 1)[1:-1])
        y = np.searchsorted(edges, score, side="right").astype(np.float64)
    return X, y, wl
