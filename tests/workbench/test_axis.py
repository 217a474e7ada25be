"""The wavelength axis travels with the data: run() records it in every fitted pipeline,
export_chain copies it into the bundle's manifest, and replay / bundle predict refuse spectra
on another axis (or of another width) with a SpectralAxisError naming both axes."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression

from nirs4all_store import SNV, WorkspaceStore, run, synthetic_nirs
from nirs4all_store.workbench.axis import SpectralAxisError, check_axis
from nirs4all_store.workbench.bundle import load_bundle, predict


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(workspace, bundle, chain id) of one run on 40 spectra over 1000..2500 nm, 30 points."""
    folder = tmp_path_factory.mktemp("axis")
    data = synthetic_nirs(40, 30, seed=0, test_fraction=0.25)
    ws = folder / "ws"
    with run([SNV(), PLSRegression(3)], data, ws, cv=3, verbose=0) as result:
        chain_id = str(result.best["chain_id"])
        bundle = result.export(folder / "model.n4a")
    return ws, Path(bundle), chain_id


def _data() -> tuple[np.ndarray, np.ndarray]:
    data = synthetic_nirs(40, 30, seed=0, test_fraction=0.25)
    assert data.X_test is not None and data.wavelengths is not None
    return data.X_test, data.wavelengths


def test_the_bundle_records_the_axis_and_accepts_spectra_on_it(fitted: tuple) -> None:
    _, bundle_path, _ = fitted
    X, wl = _data()
    bundle = load_bundle(bundle_path)
    assert bundle.wavelengths is not None
    np.testing.assert_array_equal(bundle.wavelengths, wl)
    with zipfile.ZipFile(bundle_path) as zf:
        assert json.loads(zf.read("manifest.json"))["wavelengths"] == wl.tolist()
    same = bundle.predict(X, wavelengths=wl)
    np.testing.assert_array_equal(same, bundle.predict(X))  # no axis given: width check only
    np.testing.assert_array_equal(same, predict(bundle_path, X, wavelengths=wl.copy()))


def test_the_bundle_refuses_another_axis_naming_given_and_expected(fitted: tuple) -> None:
    _, bundle_path, _ = fitted
    X, wl = _data()
    bundle = load_bundle(bundle_path)
    shifted = wl + 2.0
    with pytest.raises(SpectralAxisError, match="another wavelength axis") as info:
        bundle.predict(X, wavelengths=shifted)
    text = str(info.value)
    assert "given 30 wavelengths 1002..2502" in text
    assert "fitted on 30 wavelengths 1000..2500" in text and "column 1" in text
    np.testing.assert_array_equal(info.value.given, shifted)
    np.testing.assert_array_equal(info.value.expected, wl)
    assert isinstance(info.value, ValueError)  # callers catching ValueError still do

    reversed_axis = wl[::-1]  # cm-1 exported in the other order: the same columns swapped
    with pytest.raises(SpectralAxisError, match=r"given 30 wavelengths 2500\.\.1000"):
        bundle.predict(X[:, ::-1], wavelengths=reversed_axis)


def test_another_number_of_columns_is_refused_with_both_widths(fitted: tuple) -> None:
    _, bundle_path, _ = fitted
    X, wl = _data()
    bundle = load_bundle(bundle_path)
    with pytest.raises(SpectralAxisError, match=r"X has 29 features but chain .* expects 30") as e:
        bundle.predict(X[:, 1:], wavelengths=wl[1:])
    assert "30 wavelengths 1000..2500" in str(e.value) and "given 29 wavelengths" in str(e.value)
    assert e.value.expected is not None and e.value.given is not None
    with pytest.raises(SpectralAxisError, match="given 31 columns"):
        bundle.predict(np.hstack([X, X[:, :1]]))


def test_workspace_replay_checks_the_axis_recorded_in_the_artifacts(fitted: tuple) -> None:
    ws, _, chain_id = fitted
    X, wl = _data()
    with WorkspaceStore(ws, read_only=True) as store:
        ok = store.replay_chain(chain_id, X, wavelengths=wl)
        assert ok.shape == (len(X),)
        with pytest.raises(SpectralAxisError, match="another wavelength axis"):
            store.replay_chain(chain_id, X, wavelengths=np.linspace(900, 1700, 30))


def test_old_bundles_without_an_axis_check_the_width_only(fitted: tuple, tmp_path: Path) -> None:
    X, _ = _data()
    ws = tmp_path / "ws"
    y = np.arange(len(X), dtype=float)
    with run([SNV(), PLSRegression(3)], (X, y), ws, cv=2, verbose=0) as result:
        path = Path(result.export(tmp_path / "plain.n4a"))
    old = tmp_path / "old.n4a"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "manifest.json":  # a bundle written before the axis was recorded
                manifest = json.loads(data)
                assert manifest.pop("wavelengths") is None
                data = json.dumps(manifest).encode()
            dst.writestr(name, data)
    bundle = load_bundle(old)
    assert bundle.wavelengths is None
    any_axis = np.linspace(400, 700, X.shape[1])
    np.testing.assert_array_equal(bundle.predict(X, wavelengths=any_axis), bundle.predict(X))
    with pytest.raises(SpectralAxisError, match=r"X has 29 features but chain .* expects 30"):
        bundle.predict(X[:, :-1])


def test_check_axis_tolerance_and_messages() -> None:
    axis = np.linspace(1000.0, 2500.0, 5)
    check_axis("c", 5, axis + 1e-9, 5, axis)  # within AXIS_ATOL: the same axis
    check_axis("c", 5, None, None, axis)  # no axis given: the width only
    check_axis("c", 5, axis, None, None)  # nothing recorded: nothing to compare
    with pytest.raises(SpectralAxisError, match=r"column 3: given 1751, expected 1750"):
        check_axis("c", 5, np.where(np.arange(5) == 2, 1751.0, axis), 5, axis)
    with pytest.raises(SpectralAxisError, match="X has 4 features but chain c expects 5"):
        check_axis("c", 4, None, None, axis)
