"""Spectra files given to predict: an id column is recognised (named, or a first column of
text), kept apart from the spectra and returned beside them; files without one read exactly
as `parse_spectra_table` reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nirs4all_store.workbench.training.dataset_files import (
    DatasetError,
    find_id_column,
    parse_spectra_table,
    read_spectra_with_ids,
)

SPECTRA = [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "new.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, name, wavelengths",
    [
        ("id;1000;1002;1004\nS1;0.1;0.2;0.3\nS2;0.4;0.5;0.6\nS3;0.7;0.8;0.9\n", "id", True),
        ("sample;a;b;c\nS1;0.1;0.2;0.3\nS2;0.4;0.5;0.6\nS3;0.7;0.8;0.9\n", "sample", False),
        ("S1;0.1;0.2;0.3\nS2;0.4;0.5;0.6\nS3;0.7;0.8;0.9\n", "id", False),  # no header
        ("id;1000;1002;1004\nS1;0,1;0,2;0,3\n\nS2;0.4;0.5;0.6\nS3;0.7;0.8;0.9\n", "id", True),
    ],
)
def test_a_first_column_of_text_is_the_id_column(
    tmp_path: Path, text: str, name: str, wavelengths: bool
) -> None:
    table = read_spectra_with_ids(write(tmp_path, text))
    np.testing.assert_array_equal(table.values, SPECTRA)
    assert table.ids == ["S1", "S2", "S3"] and table.id_name == name
    if wavelengths:
        np.testing.assert_array_equal(table.wavelengths, [1000, 1002, 1004])  # type: ignore[arg-type]
    else:
        assert table.wavelengths is None


def test_a_named_id_column_anywhere(tmp_path: Path) -> None:
    path = write(
        tmp_path, "1000;sample;1002;1004\n0.1;17;0.2;0.3\n0.4;18;0.5;0.6\n0.7;19;0.8;0.9\n"
    )
    assert find_id_column(path) == (None, None)  # numbers in it: only by name
    table = read_spectra_with_ids(path, "sample")
    np.testing.assert_array_equal(table.values, SPECTRA)
    np.testing.assert_array_equal(table.wavelengths, [1000, 1002, 1004])  # type: ignore[arg-type]
    assert table.ids == ["17", "18", "19"] and table.id_name == "sample"
    with pytest.raises(DatasetError, match=r"no column named 'batch' \(--id-column\)"):
        read_spectra_with_ids(path, "batch")


def test_without_an_id_column_it_reads_as_parse_spectra_table(tmp_path: Path) -> None:
    path = write(tmp_path, "1000;1002;1004\n0.1;0.2;0.3\n0.4;0.5;0.6\n0.7;0.8;0.9\n")
    table = read_spectra_with_ids(path)
    values, wavelengths, lines = parse_spectra_table(path, x_file=True)
    np.testing.assert_array_equal(table.values, values)
    np.testing.assert_array_equal(table.wavelengths, wavelengths)  # type: ignore[arg-type]
    assert table.lines == lines and table.ids is None and table.id_name is None


@pytest.mark.parametrize(
    "text, needle",
    [
        # a bad cell after the ids: its column in the file, not among the values
        (
            "id;1000;1002;1004\nS1;0.1;x;0.3\nS2;0.4;0.5;0.6\n",
            "line 2, column 3: expected a number",
        ),
        ("id;1000;1002;1004\nS1;0.1;0.2;0.3\nS2;0.4;inf;0.6\n", "line 3, column 3: non-finite"),
        ("id;1000;1002;1004\nS1;0.1;0.2;0.3\nS2;0.4;0.5\n", "line 3: expected 4 ';'-separated"),
        # one typo in the first spectrum is reported, not taken for an id column
        ("x0.1;0.2;0.3\n0.4;0.5;0.6\n0.7;0.8;0.9\n", "line 1, column 1: expected a number"),
    ],
)
def test_bad_files_name_the_file_line_and_column(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(DatasetError, match=needle):
        read_spectra_with_ids(write(tmp_path, text))
