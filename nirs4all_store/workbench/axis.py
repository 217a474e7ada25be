"""The wavelength axis a chain was fitted on, and the check that new spectra are on it.

`run()` sets `wavelengths_` on every fitted pipeline of a dataset that has an axis (a header
row of wavelengths, or `Dataset(wavelengths=...)`), so the axis travels inside the artifacts,
and `export_chain` copies it into the bundle's manifest (`"wavelengths"`). Replay and bundle
`predict` then refuse spectra on another axis with a `SpectralAxisError`:
- a different number of columns, always (the fitted width, `n_features_in_`);
- different wavelengths, when the caller gives them (`wavelengths=`, or the header row of the
  CSV given to the CLI `predict`) and the chain recorded an axis. A chain without a recorded
  axis (bundles made before, `(X, y)` data without wavelengths) is checked on the width only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["AXIS_ATOL", "SpectralAxisError", "check_axis", "describe_axis", "recorded_axis"]

#: Two axes are the same when every wavelength agrees within this (nm or cm-1). A header
#: row written by `write_nirs4all_folder` reads back exactly (shortest round-trip repr);
#: the tolerance only absorbs an exporter that rounds its last printed digit differently.
AXIS_ATOL = 1e-6


class SpectralAxisError(ValueError):
    """Spectra on another wavelength axis (or with another number of columns) than the chain
    was fitted on. `given` and `expected` are the two axes (arrays), or the two widths
    (ints) when one side has no recorded wavelengths."""

    def __init__(self, message: str, *, given: Any, expected: Any) -> None:
        super().__init__(message)
        self.given = given
        self.expected = expected


def recorded_axis(obj: Any) -> np.ndarray | None:
    """The `wavelengths_` a fitted object carries (1-D float array), or None."""
    value = getattr(obj, "wavelengths_", None)
    if value is None:
        return None
    try:
        axis = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return axis if axis.size else None


def describe_axis(axis: np.ndarray | None, n: int | None = None) -> str:
    """'500 wavelengths 1000..2500' (or '500 columns' without an axis)."""
    if axis is None or axis.size == 0:
        return f"{n} columns" if n is not None else "no recorded axis"
    return f"{axis.size} wavelengths {axis[0]:g}..{axis[-1]:g}"


def check_axis(
    chain_id: Any,
    n_given: int,
    given: np.ndarray | None,
    n_expected: int | None,
    expected: np.ndarray | None,
) -> None:
    """SpectralAxisError when the spectra (`n_given` columns on axis `given`, if known) are
    not on the chain's axis (`n_expected` columns, axis `expected`, if recorded)."""
    if n_expected is None and expected is not None:
        n_expected = int(expected.size)
    if n_expected is not None and n_given != n_expected:
        raise SpectralAxisError(
            f"X has {n_given} features but chain {chain_id} expects {n_expected} "
            f"(the number of features it was fitted on: {describe_axis(expected, n_expected)}); "
            f"given {describe_axis(given, n_given)}",
            given=given if given is not None else n_given,
            expected=expected if expected is not None else n_expected,
        )
    if given is None or expected is None:
        return
    if given.shape != expected.shape or not np.allclose(given, expected, rtol=0, atol=AXIS_ATOL):
        differ = (
            int(np.flatnonzero(~np.isclose(given, expected, rtol=0, atol=AXIS_ATOL))[0])
            if given.shape == expected.shape
            else 0
        )
        raise SpectralAxisError(
            f"spectra on another wavelength axis: given {describe_axis(given)}, chain "
            f"{chain_id} was fitted on {describe_axis(expected)} (column {differ + 1}: given "
            f"{given[differ]:g}, expected {expected[differ]:g}); resample the spectra onto the "
            "training axis, or use a model trained on this one",
            given=given,
            expected=expected,
        )
