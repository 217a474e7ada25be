"""Dataset files through pyarrow.csv: the fast path is taken, odd files fall back to the exact
parser (same values, same error messages), metadata (Mcal) columns feed groups=."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nirs4all_store.workbench.training.dataset_files import (
    DatasetError,
    parse_exact,
    parse_spectra_table,
    read_fast,
)
from nirs4all_store.workbench.training.datasets import (
    load_nirs4all_folder,
    synthetic_nirs,
    write_nirs4all_folder,
)


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("compress", [True, False])
def test_written_folders_take_the_pyarrow_path_with_the_same_values(
    tmp_path: Path, header: bool, compress: bool
) -> None:
    ds = synthetic_nirs(20, 15, seed=1)
    folder = write_nirs4all_folder(ds, tmp_path / "d", header=header, compress=compress)
    xcal = next(folder.glob("Xcal*"))
    fast = read_fast(xcal, x_file=True)
    assert fast is not None  # pyarrow read it
    slow = parse_exact(xcal, x_file=True)
    np.testing.assert_array_equal(fast[0], slow[0])
    assert fast[2] == slow[2]
    if header:
        np.testing.assert_array_equal(fast[1], ds.wavelengths)  # type: ignore[arg-type]
    assert load_nirs4all_folder(folder).content_hash == ds.content_hash


@pytest.mark.parametrize(
    "text, needle",
    [
        ("1;2;3\n4;5\n", "line 2: expected 3 ';'-separated numbers (as on line 1), got 2"),
        ("1;2;3\n4;x;6\n", "line 2, column 2: expected a number, got 'x'"),
        ("1;2;3\n4;inf;6\n", "line 2, column 2: non-finite value 'inf'"),
        ("1,2,3,4\n", "looks ','- or tab-separated"),
    ],
)
def test_bad_files_keep_todays_messages(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "Xcal.csv"
    path.write_text(text)
    assert read_fast(path, x_file=True) is None
    with pytest.raises(DatasetError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        parse_spectra_table(path, x_file=True)


def test_variants_fall_back_and_read_as_before(tmp_path: Path) -> None:
    path = tmp_path / "Xcal.csv"
    path.write_text("1,5;2;3;\n\n4;5;6;\n")  # decimal comma, blank line, trailing ';'
    values, _, lines = parse_spectra_table(path, x_file=True)
    np.testing.assert_array_equal(values, [[1.5, 2, 3], [4, 5, 6]])
    assert lines == [1, 3]
    path.write_text("1;2;3;\n4;5;6;\n")  # trailing ';' alone: still the fast path
    fast = read_fast(path, x_file=True)
    assert fast is not None
    np.testing.assert_array_equal(fast[0], [[1, 2, 3], [4, 5, 6]])


def test_metadata_file_gives_groups_columns(tmp_path: Path) -> None:
    ds = synthetic_nirs(12, 10, seed=2)
    folder = write_nirs4all_folder(ds, tmp_path / "d")
    (folder / "Mcal.csv").write_text(
        "sample;batch\n" + "".join(f"s{i // 3};{i % 2}\n" for i in range(12))
    )
    loaded = load_nirs4all_folder(folder)
    assert loaded.metadata is not None
    assert list(loaded.metadata["sample"][:4]) == ["s0", "s0", "s0", "s1"]
    assert loaded.metadata["batch"].tolist()[:3] == [0, 1, 0]
    (folder / "Mcal.csv").write_text("sample\ns0\n")
    with pytest.raises(DatasetError, match="1 rows of metadata but the spectra file has 12"):
        load_nirs4all_folder(folder)
