"""Datasets a run trains on: nirs4all folders, in-memory arrays and a synthetic NIR generator.

Every accepted form is normalised into a frozen `Dataset` of read-only float64 arrays, so the
runner sees one shape of input and `content_hash` (stored as `pipelines.dataset_hash`) is
stable whatever form the data arrived in. Only numpy is imported here: loading a dataset must
not pay for scikit-learn.

The nirs4all folder layout and the header rule of its tables are described in
`nirs4all_store.workbench.training.dataset_files`, which reads them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from nirs4all_store.workbench.training.arrays import check_finite, check_metadata, frozen_float
from nirs4all_store.workbench.training.dataset_files import (
    DELIMITER,
    ROLE_FILE_RE,
    DatasetError,
    encode_table,
    find_role_files,
    parse_spectra_table,
    read_metadata_table,
)
from nirs4all_store.workbench.training.synthetic import synthetic_arrays

__all__ = [
    "DELIMITER",
    "Dataset",
    "DatasetError",
    "as_datasets",
    "load_nirs4all_folder",
    "parse_spectra_table",
    "synthetic_arrays",
    "synthetic_nirs",
    "write_nirs4all_folder",
]

ROLES = ("Xcal", "Ycal", "Xval", "Yval")
_HASH_VERSION = b"nirs4all_store.dataset.v1"


# --------------------------------------------------------------------------------------------
# Dataset


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """One named dataset; arrays are normalised to read-only float64 and validated on creation.

    `y` is 1-D for one target (an (n, 1) column is flattened) and 2-D for several. Equality
    is identity; compare `content_hash` to compare data.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    wavelengths: np.ndarray | None = None
    source: str | None = None
    metadata: Mapping[str, Any] | None = None  # column -> one value per training sample

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"Dataset name must be a non-empty string, got {self.name!r}")
        label = f"dataset {self.name!r}"
        if (self.X_test is None) != (self.y_test is None):
            raise ValueError(f"{label}: give both X_test and y_test or neither")
        parts = [("X_train", "y_train")]
        if self.X_test is not None:
            parts.append(("X_test", "y_test"))
        for x_field, y_field in parts:
            X = frozen_float(getattr(self, x_field), f"{label}: {x_field}")
            y = frozen_float(getattr(self, y_field), f"{label}: {y_field}")
            if X.ndim != 2:
                raise ValueError(
                    f"{label}: {x_field} must be 2-D (samples x wavelengths), got shape {X.shape}"
                )
            if y.ndim == 2 and y.shape[1] == 1:
                y = y.reshape(-1)
                y.setflags(write=False)
            if y.ndim not in (1, 2):
                raise ValueError(
                    f"{label}: {y_field} must be 1-D (one target) or 2-D (several), "
                    f"got shape {y.shape}"
                )
            if X.shape[0] == 0 or X.shape[1] == 0:
                raise ValueError(f"{label}: {x_field} is empty (shape {X.shape})")
            if X.shape[0] != y.shape[0]:
                raise ValueError(
                    f"{label}: {x_field} has {X.shape[0]} samples but {y_field} has "
                    f"{y.shape[0]}; expected one target per spectrum"
                )
            check_finite(X, f"{label}: {x_field}")
            check_finite(y, f"{label}: {y_field}")
            object.__setattr__(self, x_field, X)
            object.__setattr__(self, y_field, y)
        if self.X_test is not None:
            if self.X_test.shape[1] != self.X_train.shape[1]:
                raise ValueError(
                    f"{label}: X_test has {self.X_test.shape[1]} features but X_train has "
                    f"{self.X_train.shape[1]}"
                )
            if self.y_test.shape[1:] != self.y_train.shape[1:]:  # type: ignore[union-attr]
                raise ValueError(
                    f"{label}: y_test shape {self.y_test.shape} does not match "  # type: ignore[union-attr]
                    f"y_train shape {self.y_train.shape} (same number of targets expected)"
                )
        if self.wavelengths is not None:
            wl = frozen_float(self.wavelengths, f"{label}: wavelengths").reshape(-1)
            if wl.shape[0] != self.X_train.shape[1]:
                raise ValueError(
                    f"{label}: {wl.shape[0]} wavelengths for {self.X_train.shape[1]} features"
                )
            check_finite(wl, f"{label}: wavelengths")
            object.__setattr__(self, "wavelengths", wl)
        if self.metadata is not None:
            object.__setattr__(
                self, "metadata", check_metadata(self.metadata, self.X_train.shape[0], label)
            )

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def has_test(self) -> bool:
        return self.X_test is not None

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 of the train/test arrays (dtype, shape, bytes); name, source and wavelengths
        are left out so the same numbers hash the same whichever way they were loaded."""
        h = hashlib.sha256(_HASH_VERSION)
        for field in ("X_train", "y_train", "X_test", "y_test"):
            arr = getattr(self, field)
            h.update(field.encode() + b"\0")
            if arr is None:
                h.update(b"none\0")
                continue
            h.update(f"{arr.dtype.str}|{arr.shape}\0".encode())
            h.update(arr.tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        test = f", X_test={self.X_test.shape}" if self.X_test is not None else ""
        return (
            f"Dataset(name={self.name!r}, X_train={self.X_train.shape}, "
            f"y_train={self.y_train.shape}{test}, source={self.source!r})"
        )


# --------------------------------------------------------------------------------------------
# Synthetic NIR spectra


def synthetic_nirs(
    n_samples: int = 200,
    n_wavelengths: int = 500,
    *,
    task: str = "regression",
    n_classes: int = 3,
    seed: int = 0,
    test_fraction: float = 0.0,
) -> Dataset:
    """The embedded demo/test dataset; with test_fraction > 0 the last rows are the test set
    (samples are independent draws, so a tail split is as good as a shuffled one)."""
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)):
        raise ValueError(f"test_fraction must be a float in [0, 1), got {test_fraction!r}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    X, y, wl = synthetic_arrays(n_samples, n_wavelengths, task=task, n_classes=n_classes, seed=seed)
    source = (
        f"synthetic_nirs(n_samples={n_samples}, n_wavelengths={n_wavelengths}, task={task!r}, "
        + (f"n_classes={n_classes}, " if task == "classification" else "")
        + f"seed={seed}, test_fraction={test_fraction})"
    )
    name = f"synthetic_{task}"
    if test_fraction == 0.0:
        return Dataset(name, X, y, wavelengths=wl, source=source)
    n_test = round(n_samples * test_fraction)
    if not 1 <= n_test <= n_samples - 1:
        raise ValueError(
            f"test_fraction={test_fraction} of n_samples={n_samples} gives {n_test} test "
            "samples; expected at least one train and one test sample"
        )
    cut = n_samples - n_test
    return Dataset(name, X[:cut], y[:cut], X[cut:], y[cut:], wavelengths=wl, source=source)


# --------------------------------------------------------------------------------------------
# Reading nirs4all folders


def load_nirs4all_folder(path: str | os.PathLike[str], name: str | None = None) -> Dataset:
    """Load a nirs4all folder (Xcal/Ycal, optional Xval/Yval, optional Mcal metadata with a
    header row of column names); the name defaults to the folder's name. Errors name the
    file, the 1-based line and what was expected."""
    folder = Path(path)
    if not folder.is_dir():
        raise DatasetError(
            f"{folder}: not a folder; expected a nirs4all folder holding Xcal and Ycal"
        )
    files = find_role_files(folder)
    missing = [r for r in ("Xcal", "Ycal") if r not in files]
    if missing:
        present = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        raise DatasetError(
            f"{folder}: missing {' and '.join(missing)}; expected Xcal.csv and Ycal.csv "
            f"(optionally Xval.csv and Yval.csv, .csv.gz accepted), found {present}"
        )
    if ("Xval" in files) != ("Yval" in files):
        have, lack = ("Xval", "Yval") if "Xval" in files else ("Yval", "Xval")
        raise DatasetError(f"{folder}: {files[have].name} has no matching {lack} file")

    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    wavelengths = None
    for x_role, y_role in (("Xcal", "Ycal"), ("Xval", "Yval")):
        if x_role not in files:
            continue
        X, wl, _ = parse_spectra_table(files[x_role], x_file=True)
        y, _, _ = parse_spectra_table(files[y_role], x_file=False)
        if X.shape[0] != y.shape[0]:
            raise DatasetError(
                f"{files[x_role]} has {X.shape[0]} rows of spectra but {files[y_role]} has "
                f"{y.shape[0]} rows of targets; expected one target row per spectrum"
            )
        parts[x_role] = (X, y[:, 0] if y.shape[1] == 1 else y)
        if x_role == "Xcal":
            wavelengths = wl
        elif wl is not None and wavelengths is not None and not np.array_equal(wl, wavelengths):
            raise DatasetError(
                f"{files['Xval']}: header wavelengths differ from those of {files['Xcal'].name}"
            )
    X_cal, y_cal = parts["Xcal"]
    if "Xval" in parts:
        X_val, y_val = parts["Xval"]
        if X_val.shape[1] != X_cal.shape[1]:
            raise DatasetError(
                f"{files['Xval']} has {X_val.shape[1]} columns but {files['Xcal']} has "
                f"{X_cal.shape[1]}; expected the same wavelengths"
            )
        if y_val.shape[1:] != y_cal.shape[1:]:
            raise DatasetError(
                f"{files['Yval']} has a different number of target columns than {files['Ycal']}"
            )
    else:
        X_val = y_val = None
    metadata = None
    if "Mcal" in files:  # e.g. a sample id column, for groups= (replicate scans)
        metadata = read_metadata_table(files["Mcal"], len(X_cal))
    return Dataset(
        name or folder.resolve().name,
        X_cal,
        y_cal,
        X_val,
        y_val,
        wavelengths=wavelengths,
        source=str(folder),
        metadata=metadata,
    )


# --------------------------------------------------------------------------------------------
# Writing


def write_nirs4all_folder(
    dataset: Dataset,
    path: str | os.PathLike[str],
    *,
    header: bool = True,
    compress: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write Xcal/Ycal (and Xval/Yval when the dataset has a test set) into `path`.

    Refuses to mix with existing nirs4all files unless `overwrite`, which removes them all
    (a stale Xval would otherwise be read back as this dataset's test set). Gzip output
    carries no timestamp, so the same dataset always writes the same bytes.
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"expected a Dataset, got {type(dataset).__name__}")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    existing = [p for p in folder.iterdir() if ROLE_FILE_RE.match(p.name) and p.is_file()]
    if existing and not overwrite:
        names = ", ".join(sorted(p.name for p in existing))
        raise FileExistsError(f"{folder} already holds {names}; pass overwrite=True to replace")
    for p in existing:
        p.unlink()
    x_header = None
    if header:
        x_header = (
            [repr(w) for w in dataset.wavelengths.tolist()]
            if dataset.wavelengths is not None
            else [f"f{i + 1}" for i in range(dataset.n_features)]
        )
    suffix = ".csv.gz" if compress else ".csv"
    tables: list[tuple[str, np.ndarray, list[str] | None]] = []
    for role, X, y in (
        ("cal", dataset.X_train, dataset.y_train),
        ("val", dataset.X_test, dataset.y_test),
    ):
        if X is None or y is None:
            continue
        n_targets = 1 if y.ndim == 1 else y.shape[1]
        y_header = ["y"] if n_targets == 1 else [f"y{i + 1}" for i in range(n_targets)]
        tables.append((f"X{role}", X, x_header))
        tables.append((f"Y{role}", y, y_header if header else None))
    for stem, values, head in tables:
        (folder / f"{stem}{suffix}").write_bytes(encode_table(values, head, compress=compress))
    return folder


# --------------------------------------------------------------------------------------------
# Normalising every accepted input form

_EXPECTED = (
    "a nirs4all folder path, a Dataset, a tuple (X, y) or (X_train, y_train, X_test, y_test), "
    "or a list of those"
)


def _one(item: Any, position: int) -> Dataset:
    if isinstance(item, Dataset):
        return item
    if isinstance(item, (str, os.PathLike)):
        return load_nirs4all_folder(item)
    if isinstance(item, tuple):
        if item and all(isinstance(v, (str, os.PathLike, Dataset)) for v in item):
            raise TypeError(
                f"got a tuple of {len(item)} paths/Datasets; pass a list for several datasets"
            )
        if len(item) not in (2, 4):
            raise ValueError(
                f"got a tuple of {len(item)} items; expected (X, y) or "
                "(X_train, y_train, X_test, y_test)"
            )
        name = f"dataset_{position}"
        if len(item) == 2:
            return Dataset(name, item[0], item[1], source="arrays")
        return Dataset(name, item[0], item[1], item[2], item[3], source="arrays")
    raise TypeError(f"dataset must be {_EXPECTED}; got {type(item).__name__}")


def as_datasets(dataset: Any) -> list[Dataset]:
    """Every accepted form of the `dataset` argument as a list of named Datasets; tuples are
    named dataset_1, dataset_2... by position. Names must be unique (they key predictions)."""
    if isinstance(dataset, list):
        if not dataset:
            raise ValueError(f"got an empty list; expected {_EXPECTED}")
        for i, item in enumerate(dataset, start=1):
            if isinstance(item, list) or _looks_like_array(item):
                raise TypeError(
                    f"list item {i} is a {type(item).__name__}; a list holds several "
                    "datasets, write one dataset's arrays as a tuple (X, y)"
                )
        datasets = [_one(item, i) for i, item in enumerate(dataset, start=1)]
    else:
        datasets = [_one(dataset, 1)]
    names = [d.name for d in datasets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"duplicate dataset name(s) {duplicates}; expected unique names "
            "(build Dataset(...) objects with explicit names)"
        )
    return datasets


def _looks_like_array(item: Any) -> bool:
    """ndarray, DataFrame, Series...: array-likes that are not a tuple of arrays."""
    return hasattr(item, "__array__") and not isinstance(item, (Dataset, str, Sequence))
