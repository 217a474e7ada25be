"""Workspaces written by nirs4all 0.8.x's own store, staged into the legacy v4 layout.

nirs4all 0.8 keeps its metadata in ``store.sqlite`` (0.8.11; read from its
`pipeline/storage/store_schema.py`) or ``store.duckdb`` without a `prediction_arrays` table
(the 0.8 releases on DuckDB), and the arrays in ``arrays/<dataset>.parquet`` (one file per
dataset, deletes pending in ``arrays/_tombstones.json``). Its ids differ from the v4 layout:
16-character prediction ids, artifact ids like ``name$hash:fold`` and ``sha256:`` hashes.

Rather than a second copy path, `stage` builds an in-memory DuckDB database ``old`` that *is*
the v4 layout (the legacy column types of `schema.LEGACY_COLUMNS`, a `prediction_arrays`
table), and the existing plan / copy / switch steps adopt it unchanged, with every check
they make. On the way:
- prediction ids become `validation.stored_prediction_id` (uuid5 of the nirs4all id), the mapping
  the adapter uses, so nirs4all finds adopted predictions by its own ids;
- ``sha256:<hex>`` content hashes lose the prefix (this store keeps the bare hex digest);
  `predictions.chain_id = ''` (nirs4all's "no chain") becomes NULL;
- arrays rows of predictions that no longer exist (tombstoned, or left by a delete before a
  compaction) are not copied; a prediction id twice in the Parquet files keeps its last row;
- `chains.final_agg_*` (0.8.11's aggregated-refit summaries, columns this schema lacks) must
  be NULL: otherwise the adoption is refused (nothing is dropped silently);
- `sample_metadata` and `y_proba_shape` of the Parquet files are not copied (y_proba is
  reshaped from its flat values by the v4 rule, which that shape matches).
The original files are only read: ``store.sqlite`` stays in place, ``arrays/`` too.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import duckdb
import pyarrow as pa

from nirs4all_store.errors import AdoptionError
from nirs4all_store.legacy.ids import UDF_NAME, register_prediction_id_udf
from nirs4all_store.legacy.plan import quote
from nirs4all_store.legacy.schema import CORE_TABLES, LEGACY_COLUMNS, OPTIONAL_TABLES
from nirs4all_store.validation import stored_prediction_id

__all__ = ["SQLITE_FILENAME", "has_parquet_arrays", "stage_from_duckdb", "stage_from_sqlite"]

SQLITE_FILENAME = "store.sqlite"
ARRAYS_DIR = "arrays"
_TOMBSTONES = "_tombstones.json"
#: 0.8.11 chain columns this schema has no place for; adopted only when all NULL.
_NULL_ONLY = {"chains": ("final_agg_test_score", "final_agg_train_score", "final_agg_scores")}
_ARRAY_COLUMNS = {
    "y_true": "DOUBLE[]",
    "y_pred": "DOUBLE[]",
    "y_proba": "DOUBLE[]",
    "sample_indices": "INTEGER[]",
    "weights": "DOUBLE[]",
}
_META_TABLES = tuple(t for t in (*OPTIONAL_TABLES, *CORE_TABLES) if t != "prediction_arrays")


def _expr(table: str, column: str) -> str:
    """The staged value of a source column: legacy type, ids mapped, hashes without prefix."""
    col = quote(column)
    if column == "prediction_id":
        return f"{UDF_NAME}({col}::VARCHAR)"
    if table == "artifacts" and column == "content_hash":
        return f"regexp_replace({col}::VARCHAR, '^sha256:', '')"
    if table == "predictions" and column == "chain_id":
        return f"nullif({col}::VARCHAR, '')"
    target = LEGACY_COLUMNS.get(table, {}).get(column)
    return f"{col}::{target}" if target else col


def _check_null_only(
    con: duckdb.DuckDBPyConnection, source: str, table: str, columns: list[str]
) -> list[str]:
    problems = []
    for column in _NULL_ONLY.get(table, ()):
        if column in columns:
            n = con.execute(
                f"SELECT count(*) FROM {source} WHERE {quote(column)} IS NOT NULL"
            ).fetchone()[0]
            if n:
                problems.append(f"{table}.{column} has {n} value(s) this schema cannot keep")
    return problems


def _stage_table(
    con: duckdb.DuckDBPyConnection, source: str, table: str, columns: list[str]
) -> list[str]:
    """CREATE old.main.<table> from `source` (a relation of the source table)."""
    problems = _check_null_only(con, source, table, columns)
    kept = [c for c in columns if c not in _NULL_ONLY.get(table, ())]
    exprs = ", ".join(f"{_expr(table, c)} AS {quote(c)}" for c in kept)
    con.execute(f"CREATE TABLE old.main.{quote(table)} AS SELECT {exprs} FROM {source}")
    return problems


def _sqlite_table(db: sqlite3.Connection, table: str) -> pa.Table:
    """Every value as text (None kept): DuckDB casts it to the legacy type exactly (floats
    are written with `repr`, the shortest round-trip form)."""
    cursor = db.execute(f"SELECT * FROM {quote(table)}")
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    columns = [
        pa.array(
            [
                None if r[i] is None else repr(r[i]) if isinstance(r[i], float) else str(r[i])
                for r in rows
            ],
            type=pa.string(),
        )
        for i in range(len(names))
    ]
    return pa.Table.from_arrays(columns, names=names)


def stage_from_sqlite(con: duckdb.DuckDBPyConnection, workspace: Path) -> None:
    """Build ``old`` (in memory) from ``store.sqlite`` and ``arrays/`` (read only)."""
    path = workspace / SQLITE_FILENAME
    register_prediction_id_udf(con)
    con.execute("ATTACH ':memory:' AS old")
    # Without a WAL beside it the file is complete: immutable=1 reads it creating nothing
    # (mode=ro alone left empty store.sqlite-wal and -shm files behind, measured on 0.8.11's
    # WAL-mode file). With a WAL (nirs4all open, or crashed) mode=ro reads its commits too.
    wal_present = path.with_name(path.name + "-wal").exists()
    mode = "mode=ro" if wal_present else "mode=ro&immutable=1"
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True)
    except sqlite3.Error as exc:
        raise AdoptionError(f"cannot open {path} read-only: {exc}") from exc
    problems: list[str] = []
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        unknown = sorted(t for t in tables if t not in _META_TABLES and not t.startswith("sqlite_"))
        if unknown:
            problems.append(f"unknown table(s) {unknown}")
        for table in _META_TABLES:
            if table not in tables:
                continue
            arrow = _sqlite_table(db, table)
            con.register("n4a_source", arrow)
            try:
                problems += _stage_table(con, "n4a_source", table, arrow.column_names)
            finally:
                con.unregister("n4a_source")
    except sqlite3.Error as exc:
        raise AdoptionError(f"cannot read {path}: {exc}") from exc
    finally:
        db.close()
    _finish(con, workspace, problems, path)


def has_parquet_arrays(con: duckdb.DuckDBPyConnection, alias: str, workspace: Path) -> bool:
    """A nirs4all 0.8 ``store.duckdb``: predictions but no prediction_arrays table, and
    ``arrays/`` beside it."""
    tables = {
        name
        for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [alias]
        ).fetchall()
    }
    return (
        "predictions" in tables
        and "prediction_arrays" not in tables
        and (workspace / ARRAYS_DIR).is_dir()
    )


def stage_from_duckdb(
    con: duckdb.DuckDBPyConnection, alias: str, workspace: Path, db: Path
) -> None:
    """Build ``old`` (in memory) from the attached nirs4all 0.8 DuckDB file `alias`."""
    register_prediction_id_udf(con)
    con.execute("ATTACH ':memory:' AS old")
    problems: list[str] = []
    for table in _META_TABLES:
        columns = [
            name
            for (name,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = ? "
                "AND schema_name = 'main' AND table_name = ? ORDER BY column_index",
                [alias, table],
            ).fetchall()
        ]
        if columns:
            problems += _stage_table(con, f"{alias}.main.{quote(table)}", table, columns)
    _finish(con, workspace, problems, db)


def _tombstones(workspace: Path) -> list[str]:
    path = workspace / ARRAYS_DIR / _TOMBSTONES
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AdoptionError(f"cannot read {path}: {exc}") from exc
    return [str(k) for k in (data if isinstance(data, (list, dict)) else [])]


def _stage_arrays(con: duckdb.DuckDBPyConnection, workspace: Path) -> None:
    """old.main.prediction_arrays from arrays/*.parquet: live predictions only, last row wins."""
    columns = ", ".join(f"{quote(c)} {t}" for c, t in _ARRAY_COLUMNS.items())
    con.execute(f"CREATE TABLE old.main.prediction_arrays (prediction_id VARCHAR, {columns})")
    files = sorted((workspace / ARRAYS_DIR).glob("*.parquet"))
    if not files:
        return
    listing = "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"
    dead = [stored_prediction_id(t) for t in _tombstones(workspace) if t]
    names = ", ".join(quote(c) for c in _ARRAY_COLUMNS)
    casts = ", ".join(f"{quote(c)}::{t}" for c, t in _ARRAY_COLUMNS.items())
    con.execute(
        f"INSERT INTO old.main.prediction_arrays (prediction_id, {names}) "
        f"SELECT id, {casts} FROM (SELECT {UDF_NAME}(prediction_id::VARCHAR) AS id, * "
        f"FROM read_parquet({listing}, union_by_name = true, filename = true, "
        "file_row_number = true)) "
        "WHERE id IN (SELECT prediction_id FROM old.main.predictions) "
        "AND NOT list_contains(?::VARCHAR[], id) QUALIFY row_number() OVER "
        "(PARTITION BY id ORDER BY filename DESC, file_row_number DESC) = 1",
        [dead],
    )


def _finish(con: duckdb.DuckDBPyConnection, workspace: Path, problems: list[str], db: Path) -> None:
    if problems:
        raise AdoptionError(
            f"cannot adopt the nirs4all 0.8 workspace {db}: {'; '.join(problems)}. The "
            "workspace is untouched; nothing was written."
        )
    try:
        _stage_arrays(con, workspace)
    except duckdb.Error as exc:
        raise AdoptionError(
            f"cannot read the arrays of {workspace / ARRAYS_DIR}: {exc}. The workspace is "
            "untouched; nothing was written."
        ) from exc
