"""NIRS preprocessing transformers against hand-computed examples of their published formulas."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone

from nirs4all_store.workbench.training.transforms import (
    MSC,
    SNV,
    ALSBaseline,
    Detrend,
    SavitzkyGolay,
)

SPECTRUM = np.array([[2.0, 1.0, 3.0, 0.0, 5.0, 1.0, 4.0]])


def test_snv_hand_computed() -> None:
    out = SNV().fit_transform(np.array([[1.0, 2.0, 3.0, 4.0, 5.0]]))
    # mean 3, population std sqrt(2)
    np.testing.assert_allclose(out, [[-2, -1, 0, 1, 2]] / np.sqrt(2.0))


def test_msc_corrects_offset_and_scale_towards_the_mean_spectrum() -> None:
    X = np.array([[1.0, 2.0, 3.0], [3.0, 5.0, 7.0]])
    msc = MSC().fit(X)
    np.testing.assert_allclose(msc.reference_, [2.0, 3.5, 5.0])
    # row 1 = -1/3 + 2/3 ref, row 2 = 1/3 + 4/3 ref: both become the reference
    np.testing.assert_allclose(msc.transform(X), [[2.0, 3.5, 5.0]] * 2)
    # a new spectrum: b = 0.75 / 1.5 = 0.5, a = 0.5 - 0.5 * 2 = -0.5 -> (x + 0.5) / 0.5
    np.testing.assert_allclose(msc.transform([[0.5, 1.25, 2.0]]), [[2.0, 3.5, 5.0]])
    with pytest.raises(ValueError, match="fitted on 3 features, got X with 2"):
        msc.transform([[1.0, 2.0]])
    with pytest.raises(ValueError, match="reference spectrum is flat"):
        MSC().fit([[1.0, 1.0, 1.0]])


@pytest.mark.parametrize(
    "deriv, delta, expected",
    [
        # Savitzky & Golay (1964), window 5, quadratic: smoothing (-3, 12, 17, 12, -3) / 35
        (0, 1.0, [42 / 35, 90 / 35, 76 / 35]),
        # first derivative (-2, -1, 0, 1, 2) / 10, per unit of `delta`
        (1, 1.0, [0.5, 0.2, 0.3]),
        (1, 2.0, [0.25, 0.1, 0.15]),
        # second derivative (2, -1, -2, -1, 2) / 7
        (2, 1.0, [1.0, -4 / 7, 3 / 7]),
    ],
)
def test_savitzky_golay_interior_points_hand_computed(
    deriv: int, delta: float, expected: list[float]
) -> None:
    sg = SavitzkyGolay(window_length=5, polyorder=2, deriv=deriv, delta=delta)
    out = sg.fit_transform(SPECTRUM)
    np.testing.assert_allclose(out[0, 2:5], expected, atol=1e-12)


def test_savitzky_golay_bad_parameters_name_the_value() -> None:
    with pytest.raises(ValueError, match=r"window_length must be an odd int in 3\.\.7"):
        SavitzkyGolay(window_length=4).fit(SPECTRUM)
    with pytest.raises(ValueError, match=r"deriv must be an int in 0\.\.polyorder"):
        SavitzkyGolay(window_length=5, polyorder=1, deriv=2).fit(SPECTRUM)


def test_detrend_removes_the_least_squares_line() -> None:
    out = Detrend(order=1).fit_transform([[1.0, 3.0, 2.0, 5.0, 4.0]])
    # slope 0.8, intercept 3 at the centre: fit (1.4, 2.2, 3.0, 3.8, 4.6)
    np.testing.assert_allclose(out, [[-0.4, 0.8, -1.0, 1.2, -0.6]], atol=1e-12)
    quadratic = np.arange(6.0) ** 2 + 2.0
    np.testing.assert_allclose(Detrend(order=2).fit_transform([quadratic]), 0.0, atol=1e-12)


def test_als_baseline_a_straight_line_is_all_baseline_and_a_peak_stays() -> None:
    line = np.linspace(0.2, 0.8, 50)
    # D x = 0 for a line, so z = x solves (W + lam D'D) z = W x at every iteration
    np.testing.assert_allclose(ALSBaseline().fit_transform([line]), 0.0, atol=1e-9)
    peak = np.exp(-0.5 * ((np.arange(50) - 25) / 3.0) ** 2)
    out = ALSBaseline(lam=1e6, p=0.001).fit_transform([line + peak])[0]
    assert abs(out[25] - 1.0) < 0.05 and np.abs(out[:10]).max() < 0.02


@pytest.mark.parametrize(
    "step", [SNV(), MSC(), SavitzkyGolay(5, 2, 1), Detrend(2), ALSBaseline()], ids=type
)
def test_transformers_clone_and_pickle(step: object) -> None:
    X = np.random.default_rng(0).normal(size=(4, 12)) + np.linspace(0, 1, 12)
    fitted = clone(step).fit(X)  # type: ignore[arg-type]
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.transform(X), fitted.transform(X))


def test_demo_leaderboard_ranks_a_scatter_correction_above_none(tmp_path: object) -> None:
    from pathlib import Path

    from nirs4all_store.cli.specs import load_pipeline_spec
    from nirs4all_store.workbench.training.datasets import synthetic_nirs
    from nirs4all_store.workbench.training.session import run

    data = synthetic_nirs(120, 200, seed=0, test_fraction=0.25)
    ws = Path(str(tmp_path)) / "ws"
    with run(load_pipeline_spec("demo"), data, ws, cv=3, verbose=0) as result:
        board = result.top(20).to_pylist()
    order = [r["preprocessings"] for r in board]
    assert order[0] in ("SNV", "MSC"), order
    assert order.index("StandardScaler") > order.index(order[0])
