"""The `;`-separated tables of a nirs4all folder (`.csv` or `.csv.gz`): reading and encoding.

Only numpy is imported here: loading a dataset must not pay for scikit-learn.

nirs4all folder layout: `Xcal` and `Ycal` (training), optionally `Xval` and `Yval` (test), each
`.csv` or `.csv.gz`, `;`-separated, file names matched case-insensitively (`Xcal.csv`,
`xcal.CSV.gz`, `X_cal.csv`).

Header rule (the first row of a file is a header when):
- every cell is non-numeric (column names: `wavelengths` stays None), or
- X files only: every cell is a number, the row is "wavelength-like" (at least 2 finite values,
  all > 100, strictly increasing or decreasing: nm or cm-1) and the second row is not.
A row mixing names and numbers is data, so a typo in the first spectrum is reported rather than
silently swallowed as a header. A numeric header is never detected in Y files, nor in X files
with one column or one row.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DELIMITER",
    "ROLE_FILE_RE",
    "DatasetError",
    "SpectraTable",
    "encode_table",
    "find_id_column",
    "find_role_files",
    "parse_exact",
    "parse_spectra_table",
    "read_fast",
    "read_metadata_table",
    "read_spectra_with_ids",
]

DELIMITER = ";"
ROLE_FILE_RE = re.compile(r"^([xym])[_\-]?(cal|val)\.csv(\.gz)?$", re.IGNORECASE)


class DatasetError(ValueError):
    """A dataset file or folder is malformed; the message names the file, line and expectation."""


#: (values, wavelengths or None, line number of each data row, ids or None)
_Table = tuple[np.ndarray, np.ndarray | None, list[int], list[str] | None]


def _drop(cells: list[str], index: int | None) -> list[str]:
    """The cells without the id column's."""
    return cells if index is None else cells[:index] + cells[index + 1 :]


def _file_column(j: int, id_index: int | None) -> int:
    """1-based column in the file of value column `j` (the id column is not a value)."""
    return j + 1 + (id_index is not None and j >= id_index)


def _to_float(cell: str) -> float | None:
    """A cell's number (decimal comma accepted), or None when it is not one."""
    text = cell.strip().strip('"')
    try:
        return float(text)
    except ValueError:
        pass
    if text.count(",") == 1:
        try:
            return float(text.replace(",", "."))
        except ValueError:
            return None
    return None


def _wavelength_like(values: list[float | None]) -> bool:
    if len(values) < 2 or any(v is None for v in values):
        return False
    arr = np.array(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or not np.all(arr > 100.0):
        return False
    diff = np.diff(arr)
    return bool(np.all(diff > 0) or np.all(diff < 0))


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """Non-blank rows with their 1-based line numbers; gzip and a UTF-8 BOM handled."""
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except (OSError, EOFError) as exc:  # BadGzipFile is an OSError
        raise DatasetError(f"{path}: cannot read the file ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc})") from exc
    rows: list[tuple[int, list[str]]] = []
    for lineno, line in enumerate(io.StringIO(text, newline=None), start=1):
        if not line.strip():
            continue
        cells = next(csv.reader([line], delimiter=DELIMITER))
        if len(cells) > 1 and cells[-1].strip() == "":
            cells = cells[:-1]  # a trailing ';' some exporters add
        rows.append((lineno, cells))
    return rows


def _header_rule(
    first: list[str], second: list[str] | None, x_file: bool
) -> tuple[bool, np.ndarray | None]:
    """(is the first row a header, its wavelengths): the rule of the module docstring."""
    first_vals = [_to_float(c) for c in first]
    if all(v is None for v in first_vals):
        return True, None
    if (
        x_file
        and second is not None
        and _wavelength_like(first_vals)
        and not _wavelength_like([_to_float(c) for c in second])
    ):
        return True, np.array(first_vals, dtype=np.float64)
    return False, None


def _head(path: Path, n: int = 2) -> list[str] | None:
    """The first `n` physical lines, decoded; None when the fast path cannot judge them."""
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as fh:  # type: ignore[operator]
            lines = [fh.readline() for _ in range(n)]
        return [line.decode("utf-8-sig" if i == 0 else "utf-8") for i, line in enumerate(lines)]
    except (OSError, EOFError, UnicodeDecodeError):
        return None  # the exact parser reports it


def _cells(line: str) -> list[str]:
    cells = next(csv.reader([line.rstrip("\r\n")], delimiter=DELIMITER))
    return cells[:-1] if len(cells) > 1 and cells[-1].strip() == "" else cells


def read_fast(path: Path, x_file: bool) -> tuple[np.ndarray, np.ndarray | None, list[int]] | None:
    """pyarrow.csv for a well-formed file (measured on a 115 MB Xcal: 1.56 s and 444 MB peak
    against 2.7 s and 1.26 GB for the Python parser); None whenever anything looks unusual
    (blank lines, decimal commas, bad cells...), and the exact parser takes over."""
    fast = _fast_table(path, x_file, None)
    return None if fast is None else fast[:3]


def _fast_table(path: Path, x_file: bool, id_index: int | None) -> _Table | None:
    """`read_fast`, and the ids of column `id_index` (text, left out of the values)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    head = _head(path)
    if head is None or not head[0].strip() or not head[1].strip():
        return None
    first, second = _cells(head[0]), _cells(head[1])
    if len(first) == 1 and ("\t" in first[0] or first[0].count(",") >= 2):
        return None
    header, wavelengths = _header_rule(_drop(first, id_index), _drop(second, id_index), x_file)
    width = len(first)
    trailing = len(next(csv.reader([head[0].rstrip("\r\n")], delimiter=DELIMITER))) > width
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                skip_rows=1 if header else 0, autogenerate_column_names=True
            ),
            parse_options=pacsv.ParseOptions(delimiter=DELIMITER, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={
                    f"f{j}": pa.string() if j == id_index else pa.float64()
                    for j in range(width + trailing)
                }
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError):
        return None
    if table.num_columns != width + trailing or table.num_rows == 0:
        return None
    if trailing and table.column(width).null_count != table.num_rows:
        return None
    kept = [j for j in range(width) if j != id_index]
    values = np.empty((table.num_rows, len(kept)), dtype=np.float64)
    for k, j in enumerate(kept):
        column = table.column(j)
        if column.null_count:
            return None
        values[:, k] = column.to_numpy()
    ids = None if id_index is None else [str(v) for v in table.column(id_index).to_pylist()]
    del table
    if not np.isfinite(values).all():
        return None
    start = 2 if header else 1
    return values, wavelengths, list(range(start, start + len(values))), ids


def parse_spectra_table(
    path: Path, *, x_file: bool
) -> tuple[np.ndarray, np.ndarray | None, list[int]]:
    """(values, wavelengths or None, line number of each data row) of one file.

    Read with pyarrow.csv; a file it cannot take as is (blank lines, decimal commas, a bad
    cell...) is read again by the exact parser, which accepts the same variants as before
    and names the file, line and expectation of any error."""
    fast = read_fast(path, x_file)
    return fast if fast is not None else parse_exact(path, x_file=x_file)


@dataclass(frozen=True)
class SpectraTable:
    """Spectra to predict: values, their header wavelengths (or None), and the id column kept
    beside them (`ids`, one text per row, and its header name) when the file has one."""

    values: np.ndarray
    wavelengths: np.ndarray | None
    lines: list[int]
    ids: list[str] | None = None
    id_name: str | None = None


def find_id_column(path: Path, id_column: str | None = None) -> tuple[int | None, str | None]:
    """(index, name) of the id column of a spectra file, (None, None) without one.

    `id_column="NAME"`: the header row's cell NAME (DatasetError when there is none). Else the
    first column is an id column when its cells on the first three lines (two for a 2-line
    file) are not numbers and the second line has numbers after it (`id;1000;1002` over
    `S01;0.12;0.13`, or data rows `S01;0.12;...` / `S02;...`); its name is the header's
    cell, else "id". A typo in one spectrum's first cell is thus reported, not taken as ids."""
    head = _head(path, 3)
    if head is None:
        return None, None  # the reader reports the unreadable file
    lines = [_cells(line) for line in head if line.strip()]
    first, second = lines[0] if lines else [], lines[1] if len(lines) > 1 else []
    if id_column is not None:
        names = [c.strip().strip('"') for c in first]
        if id_column not in names:
            raise DatasetError(
                f"{path} line 1: no column named {id_column!r} (--id-column); expected a header "
                f"row naming it, got {names[:6]}{' ...' if len(names) > 6 else ''}"
            )
        return names.index(id_column), id_column
    if len(first) < 2 or len(second) != len(first):
        return None, None
    if any(_to_float(cells[0]) is not None for cells in lines):
        return None, None
    if all(_to_float(c) is None for c in second[1:]):
        return None, None
    header = _header_rule(first[1:], second[1:], True)[0]
    return 0, first[0].strip().strip('"') if header else "id"


def read_spectra_with_ids(path: Path, id_column: str | None = None) -> SpectraTable:
    """A spectra file given to predict, its id column (see `find_id_column`) kept apart.

    Read like `parse_spectra_table` (pyarrow.csv, the exact parser for odd files), the id
    cells as text; a file without an id column reads exactly as there."""
    index, name = find_id_column(path, id_column)
    fast = _fast_table(path, True, index)
    values, wavelengths, lines, ids = fast if fast is not None else _exact_table(path, True, index)
    return SpectraTable(values, wavelengths, lines, ids, name if ids is not None else None)


def read_metadata_table(path: Path, n_rows: int) -> dict[str, np.ndarray]:
    """A metadata table (Mcal/Mval: a header row of column names, any cell types) as columns
    of `n_rows` values each (pyarrow.csv infers numbers or text per column)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=DELIMITER))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DatasetError(f"{path}: cannot read the metadata table ({exc})") from exc
    if table.num_rows != n_rows:
        raise DatasetError(
            f"{path} has {table.num_rows} rows of metadata but the spectra file has {n_rows}; "
            "expected one metadata row per spectrum (and a header row of column names)"
        )
    return {
        str(name).strip(): np.asarray(table.column(name).to_pylist())
        for name in table.column_names
        if str(name).strip()
    }


def parse_exact(path: Path, *, x_file: bool) -> tuple[np.ndarray, np.ndarray | None, list[int]]:
    """Today's exact parser: every malformed file gets its message (file, line, expected)."""
    return _exact_table(path, x_file, None)[:3]


def _exact_table(path: Path, x_file: bool, id_index: int | None) -> _Table:
    """`parse_exact`, and the ids of column `id_index` (left out of the values; column numbers
    in messages stay those of the file)."""
    rows = _read_rows(path)
    what = "spectra" if x_file else "targets"
    if not rows:
        raise DatasetError(f"{path}: the file is empty; expected ';'-separated {what}")
    first_line, first = rows[0]
    if len(first) == 1 and ("\t" in first[0] or first[0].count(",") >= 2):
        raise DatasetError(
            f"{path} line {first_line}: expected ';'-separated values, "
            "the line looks ','- or tab-separated"
        )
    second = _drop(rows[1][1], id_index) if len(rows) > 1 else None
    header, wavelengths = _header_rule(_drop(first, id_index), second, x_file)
    data = rows[1:] if header else rows
    if not data:
        raise DatasetError(
            f"{path}: only a header row (line {first_line}); expected rows of {what}"
        )
    width = len(first)
    ref = f"as on line {first_line}"
    for lineno, cells in data:
        if len(cells) != width:
            raise DatasetError(
                f"{path} line {lineno}: expected {width} ';'-separated numbers ({ref}), "
                f"got {len(cells)}"
            )
    ids = None if id_index is None else [cells[id_index].strip() for _, cells in data]
    data = [(lineno, _drop(cells, id_index)) for lineno, cells in data]
    width -= id_index is not None
    try:
        values = np.array([cells for _, cells in data], dtype=np.float64)
    except ValueError:
        values = np.empty((len(data), width), dtype=np.float64)
        for i, (lineno, cells) in enumerate(data):
            for j, cell in enumerate(cells):
                number = _to_float(cell)
                if number is None:
                    hint = ""
                    if lineno == first_line:
                        hint = "; a header row must be all names or all wavelengths"
                    raise DatasetError(
                        f"{path} line {lineno}, column {_file_column(j, id_index)}: expected a "
                        f"number, got {cell!r}{hint}"
                    ) from None
                values[i, j] = number
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        i, j = (int(k) for k in bad[0])
        raise DatasetError(
            f"{path} line {data[i][0]}, column {_file_column(j, id_index)}: non-finite value "
            f"{data[i][1][j].strip()!r}; expected a finite number"
        )
    return values, wavelengths, [lineno for lineno, _ in data], ids


def find_role_files(folder: Path) -> dict[str, Path]:
    found: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        m = ROLE_FILE_RE.match(entry.name)
        if m and entry.is_file():
            role = m.group(1).upper() + m.group(2).lower()
            found.setdefault(role, []).append(entry)
    for role, paths in found.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            raise DatasetError(f"{folder}: several {role} files ({names}); expected exactly one")
    return {role: paths[0] for role, paths in found.items()}


def encode_table(values: np.ndarray, header: list[str] | None, *, compress: bool) -> bytes:
    """One table's file bytes (gzip-compressed when `compress`).

    Python's shortest round-trip float repr keeps every float64 exact, so a written folder
    loads back to the same content hash. Gzip output carries no timestamp (mtime=0), so the
    same table always encodes to the same bytes.
    """
    lines = [DELIMITER.join(header)] if header is not None else []
    matrix = values.reshape(values.shape[0], -1).tolist()
    lines.extend(DELIMITER.join(map(repr, row)) for row in matrix)
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if compress:
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=6, mtime=0) as gz:
            gz.write(data)
        data = buf.getvalue()
    return data
