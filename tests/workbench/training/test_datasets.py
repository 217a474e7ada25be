"""Datasets: the synthetic generator, nirs4all folders (read, write, errors) and as_datasets."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression
from sklearn.metrics import r2_score

from nirs4all_store.workbench.training.datasets import (
    Dataset,
    DatasetError,
    as_datasets,
    load_nirs4all_folder,
    synthetic_arrays,
    synthetic_nirs,
    write_nirs4all_folder,
)

# ------------------------------------------------------------------------------------------
# synthetic_nirs


def test_synthetic_same_seed_same_bytes_different_seed_different() -> None:
    a = synthetic_nirs(50, 120, seed=3)
    b = synthetic_nirs(50, 120, seed=3)
    c = synthetic_nirs(50, 120, seed=4)
    assert a.X_train.tobytes() == b.X_train.tobytes()
    assert a.y_train.tobytes() == b.y_train.tobytes()
    assert a.content_hash == b.content_hash
    assert not np.array_equal(a.X_train, c.X_train)
    assert a.content_hash != c.content_hash


def test_synthetic_shapes_wavelengths_and_split() -> None:
    d = synthetic_nirs(100, 300, seed=1, test_fraction=0.25)
    assert d.X_train.shape == (75, 300) and d.y_train.shape == (75,)
    assert d.X_test is not None and d.X_test.shape == (25, 300)
    assert d.y_test is not None and d.y_test.shape == (25,)
    assert d.has_test and d.n_features == 300
    assert d.wavelengths is not None
    assert d.wavelengths[0] == 1000.0 and d.wavelengths[-1] == 2500.0
    assert np.all(np.diff(d.wavelengths) > 0)
    full = synthetic_nirs(100, 300, seed=1)
    assert not full.has_test and full.X_test is None
    # the split is a deterministic tail split of the same draws
    np.testing.assert_array_equal(full.X_train[:75], d.X_train)
    np.testing.assert_array_equal(full.X_train[75:], d.X_test)
    assert d.X_train.dtype == np.float64 and not d.X_train.flags.writeable


def test_synthetic_regression_is_learnable_by_pls() -> None:
    d = synthetic_nirs(300, 400, seed=7, test_fraction=0.3)
    assert d.X_test is not None and d.y_test is not None
    model = PLSRegression(n_components=10).fit(d.X_train, d.y_train)
    r2 = r2_score(d.y_test, model.predict(d.X_test).ravel())
    assert r2 > 0.8
    # ...and not trivially: one latent variable is not enough (baseline/scatter/overlap)
    one = PLSRegression(n_components=1).fit(d.X_train, d.y_train)
    assert r2_score(d.y_test, one.predict(d.X_test).ravel()) < r2


def test_synthetic_classification_labels_balanced() -> None:
    d = synthetic_nirs(301, 200, task="classification", n_classes=4, seed=2)
    labels, counts = np.unique(d.y_train, return_counts=True)
    np.testing.assert_array_equal(labels, [0.0, 1.0, 2.0, 3.0])
    assert counts.max() - counts.min() <= 1
    assert d.name == "synthetic_classification"
    assert "n_classes=4" in (d.source or "")


def test_synthetic_arrays_match_dataset() -> None:
    X, y, wl = synthetic_arrays(40, 50, seed=5)
    d = synthetic_nirs(40, 50, seed=5)
    np.testing.assert_array_equal(X, d.X_train)
    np.testing.assert_array_equal(y, d.y_train)
    np.testing.assert_array_equal(wl, d.wavelengths)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"n_samples": 1}, "n_samples"),
        ({"n_samples": 10.5}, "n_samples"),
        ({"n_wavelengths": 3}, "n_wavelengths"),
        ({"seed": -1}, "seed"),
        ({"seed": True}, "seed"),
        ({"task": "clustering"}, "task"),
        ({"task": "classification", "n_classes": 1}, "n_classes"),
        ({"task": "classification", "n_classes": 30, "n_samples": 20}, "n_classes"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"test_fraction": -0.1}, "test_fraction"),
        ({"test_fraction": "0.2"}, "test_fraction"),
        ({"test_fraction": 0.01, "n_samples": 10}, "test_fraction"),
    ],
)
def test_synthetic_bad_arguments(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        synthetic_nirs(**kwargs)  # type: ignore[arg-type]


def test_module_import_does_not_import_sklearn() -> None:
    code = (
        "import sys, nirs4all_store.workbench.training.datasets as d; d.synthetic_nirs(20, 30); "
        "sys.exit(int('sklearn' in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ------------------------------------------------------------------------------------------
# Dataset


def test_dataset_normalises_and_hashes_content_not_name() -> None:
    X = np.arange(12).reshape(4, 3)
    y = np.array([[1], [2], [3], [4]])
    d = Dataset("a", X, y)
    assert d.X_train.dtype == np.float64 and d.y_train.shape == (4,)
    X[0, 0] = 99  # the caller's array is copied, so the hash cannot drift
    assert d.X_train[0, 0] == 0.0
    with pytest.raises(ValueError):
        d.X_train[0, 0] = 5.0
    same = Dataset("b", np.arange(12.0).reshape(4, 3), [1.0, 2.0, 3.0, 4.0], source="x")
    assert same.content_hash == d.content_hash
    other = Dataset("a", np.arange(12.0).reshape(3, 4), [1.0, 2.0, 3.0])
    assert other.content_hash != d.content_hash  # shape is part of the hash
    with_test = Dataset("a", d.X_train, d.y_train, d.X_train, d.y_train)
    assert with_test.content_hash != d.content_hash
    assert "X_train=(4, 3)" in repr(d)


# ------------------------------------------------------------------------------------------
# nirs4all folders: round trips


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("compress", [False, True])
def test_folder_round_trip(tmp_path: Path, header: bool, compress: bool) -> None:
    d = synthetic_nirs(40, 60, seed=11, test_fraction=0.25)
    folder = write_nirs4all_folder(d, tmp_path / "wheat", header=header, compress=compress)
    suffix = ".csv.gz" if compress else ".csv"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{s}{suffix}" for s in ("Xcal", "Ycal", "Xval", "Yval")
    )
    back = load_nirs4all_folder(folder)
    assert back.name == "wheat" and back.source == str(folder)
    np.testing.assert_array_equal(back.X_train, d.X_train)
    np.testing.assert_array_equal(back.y_test, d.y_test)  # type: ignore[arg-type]
    assert back.content_hash == d.content_hash
    if header:
        np.testing.assert_array_equal(back.wavelengths, d.wavelengths)  # type: ignore[arg-type]
    else:
        assert back.wavelengths is None


def test_folder_without_val_and_multi_target(tmp_path: Path) -> None:
    X, y, _ = synthetic_arrays(20, 30, seed=0)
    Y = np.column_stack([y, y * 2])
    d = Dataset("multi", X, Y)
    write_nirs4all_folder(d, tmp_path / "m")
    back = load_nirs4all_folder(tmp_path / "m", name="renamed")
    assert back.name == "renamed" and not back.has_test
    assert back.y_train.shape == (20, 2)
    assert back.content_hash == d.content_hash
    # header names (no wavelengths) are detected as a header, not data
    assert back.wavelengths is None and back.X_train.shape == (20, 30)


def test_gzip_output_is_byte_identical(tmp_path: Path) -> None:
    d = synthetic_nirs(10, 20)
    write_nirs4all_folder(d, tmp_path / "a", compress=True)
    write_nirs4all_folder(d, tmp_path / "b", compress=True)
    assert (tmp_path / "a/Xcal.csv.gz").read_bytes() == (tmp_path / "b/Xcal.csv.gz").read_bytes()


def test_write_refuses_to_mix_unless_overwrite(tmp_path: Path) -> None:
    write_nirs4all_folder(synthetic_nirs(20, 20, test_fraction=0.5), tmp_path / "f")
    small = synthetic_nirs(10, 20, seed=1)
    with pytest.raises(FileExistsError, match=r"Xval\.csv"):
        write_nirs4all_folder(small, tmp_path / "f")
    write_nirs4all_folder(small, tmp_path / "f", overwrite=True, compress=True)
    back = load_nirs4all_folder(tmp_path / "f")
    assert not back.has_test  # the stale Xval/Yval were removed
    assert back.content_hash == small.content_hash


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if name.lower().endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_hand_written_variants(tmp_path: Path) -> None:
    folder = tmp_path / "hand"
    # names case-insensitive, X_cal spelling, decimal commas, trailing ';', CRLF, blank lines,
    # a BOM, and a decreasing wavenumber header (cm-1)
    _write(folder, "X_CAL.CSV", "\ufeff9000;8000;7000\r\n0,1;0,2;0,3\r\n\r\n0.4;0.5;0.6;\r\n")
    _write(folder, "ycal.csv.gz", "protein\n1.5\n2.5\n")
    d = load_nirs4all_folder(folder)
    np.testing.assert_array_equal(d.X_train, [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    np.testing.assert_array_equal(d.wavelengths, [9000.0, 8000.0, 7000.0])  # type: ignore[arg-type]
    np.testing.assert_array_equal(d.y_train, [1.5, 2.5])


def test_numeric_first_row_that_is_data_is_kept(tmp_path: Path) -> None:
    folder = tmp_path / "raw"
    # every row looks like "wavelengths" (increasing, > 100): no row is a header
    _write(folder, "Xcal.csv", "200;300;400\n210;310;410\n")
    _write(folder, "Ycal.csv", "1\n2\n")
    d = load_nirs4all_folder(folder)
    assert d.X_train.shape == (2, 3) and d.wavelengths is None


# ------------------------------------------------------------------------------------------
# nirs4all folders: errors name the file, the line and what was expected


def _valid_y(folder: Path, n: int = 3) -> None:
    _write(folder, "Ycal.csv", "".join(f"{i}\n" for i in range(n)))


@pytest.mark.parametrize(
    ("xcal", "needles"),
    [
        (
            "1000;1100;1200\n0.1;0.2;0.3\n0.1;0.2\n0.1;0.2;0.3\n",
            ["Xcal.csv line 3", "expected 3 ';'-separated numbers", "got 2"],
        ),
        (
            "0.1;0.2;0.3\n0.1;abc;0.3\n0.1;0.2;0.3\n",
            ["Xcal.csv line 2, column 2", "expected a number", "'abc'"],
        ),
        ("0.1;0.2;0.3\n0.1;;0.3\n0.1;0.2;0.3\n", ["Xcal.csv line 2, column 2", "''"]),
        ("0.1;0.2;0.3\n0.1;nan;0.3\n0.1;0.2;0.3\n", ["Xcal.csv line 2, column 2", "non-finite"]),
        ("0.1;x;0.3\n0.1;0.2;0.3\n0.1;0.2;0.3\n", ["Xcal.csv line 1, column 2", "header row"]),
        ("0.1,0.2,0.3\n0.1,0.2,0.3\n0.4,0.5,0.6\n", ["Xcal.csv line 1:", "tab-separated"]),
        ("", ["Xcal.csv", "empty"]),
        ("a;b;c\n", ["Xcal.csv", "only a header row (line 1)"]),
    ],
)
def test_bad_xcal_errors(tmp_path: Path, xcal: str, needles: list[str]) -> None:
    folder = tmp_path / "bad"
    _write(folder, "Xcal.csv", xcal)
    _valid_y(folder)
    with pytest.raises(DatasetError) as info:
        load_nirs4all_folder(folder)
    for needle in needles:
        assert needle in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_value_in_gzip_file_names_line(tmp_path: Path) -> None:
    folder = tmp_path / "gz"
    _write(folder, "Xcal.csv", "0.1;0.2\n0.3;0.4\n")
    _write(folder, "Ycal.csv.gz", "y\n1\noops\n")
    with pytest.raises(DatasetError, match=r"Ycal\.csv\.gz line 3, column 1: .*'oops'"):
        load_nirs4all_folder(folder)


def test_corrupt_gzip(tmp_path: Path) -> None:
    folder = tmp_path / "gz"
    _write(folder, "Xcal.csv", "0.1;0.2\n")
    (folder / "Ycal.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match=r"Ycal\.csv\.gz: cannot read"):
        load_nirs4all_folder(folder)


def test_missing_files_name_folder_and_expected(tmp_path: Path) -> None:
    folder = tmp_path / "empty_ds"
    _write(folder, "Xcal.csv", "0.1;0.2\n")
    with pytest.raises(DatasetError) as info:
        load_nirs4all_folder(folder)
    msg = str(info.value)
    assert "empty_ds" in msg and "missing Ycal" in msg and "Ycal.csv" in msg
    assert "found Xcal.csv" in msg
    with pytest.raises(DatasetError, match="not a folder"):
        load_nirs4all_folder(tmp_path / "nope")


def test_row_count_mismatch_names_both_files(tmp_path: Path) -> None:
    folder = tmp_path / "mm"
    _write(folder, "Xcal.csv", "0.1;0.2\n0.3;0.4\n0.5;0.6\n")
    _write(folder, "Ycal.csv", "1\n2\n")
    with pytest.raises(DatasetError) as info:
        load_nirs4all_folder(folder)
    msg = str(info.value)
    assert "Xcal.csv has 3 rows" in msg and "Ycal.csv has 2 rows" in msg


def test_val_errors(tmp_path: Path) -> None:
    folder = tmp_path / "v"
    _write(folder, "Xcal.csv", "0.1;0.2\n0.3;0.4\n")
    _write(folder, "Ycal.csv", "1\n2\n")
    _write(folder, "Xval.csv", "0.1;0.2\n")
    with pytest.raises(DatasetError, match=r"Xval\.csv has no matching Yval"):
        load_nirs4all_folder(folder)
    _write(folder, "Yval.csv", "1\n")
    _write(folder, "Xval.csv", "0.1;0.2;0.3\n")
    with pytest.raises(DatasetError, match=r"Xval\.csv has 3 columns but .*Xcal\.csv has 2"):
        load_nirs4all_folder(folder)
    _write(folder, "Xval.csv", "0.1;0.2\n")
    assert load_nirs4all_folder(folder).has_test
    _write(folder, "Xval.csv.gz", "0.1;0.2\n")
    with pytest.raises(DatasetError, match=r"several Xval files \(Xval.csv, Xval.csv.gz\)"):
        load_nirs4all_folder(folder)


# ------------------------------------------------------------------------------------------
# as_datasets


def test_as_datasets_accepted_forms(tmp_path: Path) -> None:
    X, y, _ = synthetic_arrays(30, 40, seed=2)
    pair = as_datasets((X, y))
    assert [d.name for d in pair] == ["dataset_1"] and not pair[0].has_test
    four = as_datasets((X[:20], y[:20], X[20:], y[20:]))
    assert four[0].has_test and four[0].X_test.shape == (10, 40)  # type: ignore[union-attr]
    ds = synthetic_nirs(20, 40)
    assert as_datasets(ds) == [ds]
    folder = write_nirs4all_folder(ds, tmp_path / "corn")
    from_path = as_datasets(str(folder))
    assert from_path[0].name == "corn" and from_path[0].content_hash == ds.content_hash
    mixed = as_datasets([(X, y), folder, ds, (X, y.tolist())])
    assert [d.name for d in mixed] == ["dataset_1", "corn", "synthetic_regression", "dataset_4"]
    # lists (not arrays) inside the tuple are accepted too
    assert mixed[3].content_hash == mixed[0].content_hash


@pytest.mark.parametrize(
    ("given", "error", "needle"),
    [
        ((np.ones((3, 2)), np.ones(3), np.ones((3, 2))), ValueError, "tuple of 3 items"),
        ((np.ones(3), np.ones(3)), ValueError, "X_train must be 2-D"),
        ((np.ones((3, 2)), np.ones(4)), ValueError, "X_train has 3 samples but y_train has 4"),
        ((np.ones((3, 2)), [1.0, np.nan, 2.0]), ValueError, "y_train holds 1 NaN/inf"),
        ((np.ones((3, 2)), np.array(["a", "b", "c"])), TypeError, "encode class labels"),
        ((np.ones((3, 2)), np.ones(3), np.ones((2, 5)), np.ones(2)), ValueError, "X_test has 5"),
        ((np.ones((3, 2)), np.ones(3), np.ones((2, 2)), None), ValueError, "both X_test"),
        (("a", "b"), TypeError, "pass a list for several datasets"),
        ([], ValueError, "empty list"),
        ([np.ones((3, 2)), np.ones(3)], TypeError, "write one dataset's arrays as a tuple"),
        (np.ones((3, 2)), TypeError, "got ndarray"),
        ({"X": 1}, TypeError, "got dict"),
        (None, TypeError, "got NoneType"),
    ],
)
def test_as_datasets_bad_forms(given: object, error: type[Exception], needle: str) -> None:
    with pytest.raises(error, match=needle):
        as_datasets(given)


def test_as_datasets_duplicate_names_and_bad_folder(tmp_path: Path) -> None:
    ds = synthetic_nirs(10, 20)
    with pytest.raises(ValueError, match="duplicate dataset name"):
        as_datasets([ds, ds])
    with pytest.raises(DatasetError, match="not a folder"):
        as_datasets([ds, tmp_path / "missing"])
