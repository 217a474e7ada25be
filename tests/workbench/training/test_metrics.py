"""The metric set (sklearn.metrics + chemometrics) against hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from nirs4all_store.workbench.training.metrics import metric_ascending, scores


def test_regression_set_hand_computed() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.5, 1.5, 3.5, 4.5])  # residuals p - y = (.5, -.5, .5, .5)
    s = scores("regression", y, p)
    assert s["rmse"] == pytest.approx(0.5)
    assert s["mae"] == pytest.approx(0.5)
    assert s["bias"] == pytest.approx(0.25)
    assert s["sep"] == pytest.approx(0.5)  # sqrt(0.75 / 3)
    assert s["r2"] == pytest.approx(0.8)  # 1 - 1 / 5
    assert s["rpd"] == pytest.approx(np.sqrt(5 / 3) / 0.5)
    assert s["rpiq"] == pytest.approx(1.5 / 0.5)  # Q3 3.25 - Q1 1.75
    assert s["slope"] == pytest.approx(22 / 27)  # cov 11/6 over var(p) 9/4


def test_classification_set_hand_computed() -> None:
    y = np.array([0, 0, 1, 1, 2, 2], dtype=float)
    p = np.array([0, 1, 1, 1, 2, 0], dtype=float)
    s = scores("classification", y, p)
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["balanced_accuracy"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert s["f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert s["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert s["labels"] == [0.0, 1.0, 2.0]


def test_directions() -> None:
    assert [metric_ascending(m) for m in ("rmse", "sep", "rpd", "rpiq", "r2", "f1")] == [
        True,
        True,
        False,
        False,
        False,
        False,
    ]
