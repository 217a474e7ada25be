"""Adopt a workspace written by the earlier raw-DuckDB nirs4all store, losing nothing.

Why a copy and not an in-place migration: the legacy file declares DuckDB foreign keys and
secondary indexes, and DuckDB cannot ALTER a table that they reference (STACK_FACTS). So a
new file is built at our schema head (Alembic), the legacy file is ATTACHed READ_ONLY and
every table is copied with one set-based ``INSERT ... SELECT`` (identical ids, values, JSON
text and arrays), then the new file is switched in atomically.

Choices, and why:
- Legacy-only columns (runs.project_id, the chain CV/final scores, predictions.refit_context,
  the artifact cache keys) become real nullable columns (revision 0002), not a JSON `extra`
  bag: `v_chain_summary` then reads exactly as it did, the values keep their SQL types and
  stay queryable on every backend. `projects` becomes a table of ours, the view is recreated
  by the same revision.
- Timestamps: the legacy TIMESTAMP columns are naive; they are ASSUMED TO BE UTC and copied
  unchanged (our schema stores naive UTC). A legacy NULL in a column we require
  (created_at, status, format, level, fold_strategy) gets the legacy DDL's default, timestamps
  the adoption time; the report counts every value filled.
- `artifacts.ref_count` is recomputed: the number of chains whose `fold_artifacts` or
  `shared_artifacts` values (one id or a list of ids) name the artifact, each chain counted
  once per artifact (the legacy store counted save calls). `referenced_at` is the creation
  time of the first referencing chain.
- `prediction_arrays.y_proba`: legacy stored a flat DOUBLE[]. Rule: it is the row-major
  ravel of an (n_samples, n_classes) matrix, n_samples = len(y_pred), else len(y_true), else
  len(sample_indices); so it becomes n_samples rows of len(y_proba) / n_samples values. A
  length that does not divide refuses the adoption (naming the predictions) before anything
  is written. In every known workspace y_proba is NULL, which stays NULL.
  `sample_indices` INTEGER[] widens to BIGINT[].

Crash safety. Files, next to ``store.duckdb``: ``.adopting`` (being built, maybe
incomplete), ``.adopted`` (complete: renamed only after commit, checkpoint and fsync),
``.legacy-bak`` (the original: a hard link, else a copy made via ``.legacy-bak.tmp``).
Sequence: build ``.adopting`` -> rename to ``.adopted`` -> back the original up ->
``os.replace(.adopted, store.duckdb)``. ``store.duckdb`` is therefore always either the
untouched legacy file or the complete new one, and `recover_interrupted_adoption` (run before
every open) deletes an ``.adopting`` leftover (roll back) or finishes an ``.adopted`` one
(roll forward). Artifact files are not touched: the layout is the same.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import duckdb

from nirs4all_store.db.engine import (
    DB_FILENAME,
    create_store_engine,
    duckdb_url,
    is_lock_error,
    locked_error,
)
from nirs4all_store.db.migrate import VERSION_TABLE, upgrade
from nirs4all_store.durable import fsync_dir, fsync_file
from nirs4all_store.errors import AdoptionError, UnknownSchemaError
from nirs4all_store.legacy.schema import (
    CORE_TABLES,
    LEGACY_COLUMNS,
    LEGACY_EXTRA_COLUMNS,
    LEGACY_VIEWS,
    NOT_NULL_FILLS,
    OPTIONAL_TABLES,
    TIMESTAMP_FILL_COLUMNS,
)
from nirs4all_store.models import Base
from nirs4all_store.repositories.chains import artifact_refs as chain_artifact_ids
from nirs4all_store.repositories.predictions import NATURAL_KEY_SQL

ADOPTING_SUFFIX = ".adopting"
ADOPTED_SUFFIX = ".adopted"
BACKUP_SUFFIX = ".legacy-bak"

AdoptionStatus = Literal["adopted", "would_adopt", "already_current", "empty"]

#: Test hook: called with the name of each step boundary (tests kill the process there).
_on_step: Callable[[str], None] | None = None

#: DuckDB storage format versions of files written before DuckDB recorded its own version.
_STORAGE_VERSIONS: dict[int, str] = {
    64: "v0.9.0 or later",
    51: "v0.8.0 or v0.8.1",
    43: "v0.7.0 or v0.7.1",
    39: "v0.6.0 or v0.6.1",
    38: "v0.5.0 or v0.5.1",
    33: "v0.3.3, v0.3.4 or v0.4.0",
    31: "v0.3.2",
    27: "v0.3.1",
    25: "v0.3.0",
}

# Main header layout: checksum u64, b"DUCK", storage version u64, 4 flag u64s, then (since
# v0.10) the library version string and source id, 32 bytes each, NUL padded.
_MAGIC_OFFSET, _VERSION_OFFSET, _LIBRARY_OFFSET, _SOURCE_OFFSET, _FIELD = 8, 12, 52, 84, 32


def _step(name: str) -> None:
    if _on_step is not None:
        _on_step(name)


# --------------------------------------------------------------------------- file versions


@dataclass(frozen=True)
class DuckDBFileHeader:
    """What a DuckDB file's main header says about the DuckDB that wrote it."""

    storage_version: int
    library_version: str | None
    source_id: str | None

    @property
    def writer(self) -> str:
        if self.library_version:
            return self.library_version
        return _STORAGE_VERSIONS.get(
            self.storage_version, f"unknown (storage version {self.storage_version})"
        )


def read_duckdb_header(path: str | Path) -> DuckDBFileHeader | None:
    """The header of a DuckDB file, None when the file is not one (no ``DUCK`` magic)."""
    with open(path, "rb") as fh:
        data = fh.read(_SOURCE_OFFSET + _FIELD)
    if len(data) < _VERSION_OFFSET + 8 or data[_MAGIC_OFFSET:_VERSION_OFFSET] != b"DUCK":
        return None
    (storage_version,) = struct.unpack_from("<Q", data, _VERSION_OFFSET)

    def text(offset: int) -> str | None:
        raw = data[offset : offset + _FIELD].split(b"\0", 1)[0]
        value = raw.decode("ascii", "replace")
        return value if value and value.isprintable() else None

    library = text(_LIBRARY_OFFSET) if storage_version >= 64 else None
    if library is not None and not library.startswith("v"):
        library = None
    return DuckDBFileHeader(storage_version, library, text(_SOURCE_OFFSET) if library else None)


class DuckDBFileVersionError(AdoptionError):
    """The installed DuckDB cannot read a workspace file; says who wrote it and how to convert."""

    def __init__(self, message: str, *, path: str, writer: str | None) -> None:
        super().__init__(message)
        self.path = path
        self.writer = writer


def unreadable_database_error(path: str | Path, exc: BaseException) -> AdoptionError:
    """The error for a DuckDB file the installed DuckDB cannot open (store.py reuses it)."""
    header = read_duckdb_header(path)
    if header is None:
        return AdoptionError(f"{path} is not a DuckDB database file (no DUCK header): {exc}")
    exact = header.library_version
    if exact is not None and exact.lstrip("v") == duckdb.__version__:
        return AdoptionError(f"DuckDB {duckdb.__version__} cannot open {path}: {exc}")
    pin = f"duckdb=={exact.lstrip('v')}" if exact else f"the DuckDB {header.writer}"
    return DuckDBFileVersionError(
        f"{path} was written by DuckDB {header.writer} (storage format version "
        f"{header.storage_version}) and the installed DuckDB {duckdb.__version__} cannot read "
        f"it: {exc}. Convert it: in a separate environment install {pin}, open the file and "
        "run EXPORT DATABASE 'n4a_export'; then with DuckDB "
        f"{duckdb.__version__} open a new file, run IMPORT DATABASE 'n4a_export', keep the old "
        f"file aside and put the new one at {path}. Nothing was written.",
        path=str(path),
        writer=header.writer,
    )


# --------------------------------------------------------------------------- paths, recovery


@dataclass(frozen=True)
class _Paths:
    db: Path

    def _with(self, suffix: str) -> Path:
        return self.db.with_name(self.db.name + suffix)

    @property
    def adopting(self) -> Path:
        return self._with(ADOPTING_SUFFIX)

    @property
    def adopted(self) -> Path:
        return self._with(ADOPTED_SUFFIX)

    @property
    def backup(self) -> Path:
        return self._with(BACKUP_SUFFIX)

    @property
    def backup_tmp(self) -> Path:
        return self._with(BACKUP_SUFFIX + ".tmp")


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _unlink(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _make_backup(paths: _Paths) -> None:
    """Keep the original as ``.legacy-bak``: a hard link (instant), else a fsynced copy."""
    try:
        os.link(paths.db, paths.backup)
    except FileExistsError:
        raise
    except OSError:
        shutil.copyfile(paths.db, paths.backup_tmp)
        fsync_file(paths.backup_tmp)
        os.replace(paths.backup_tmp, paths.backup)
    fsync_dir(paths.db.parent)


def recover_interrupted_adoption(workspace_path: str | Path) -> None:
    """Finish or roll back an adoption a crash interrupted; ~free when there is none.

    ``.adopting`` is incomplete by construction: deleted (``store.duckdb`` is still the
    legacy file). ``.adopted`` is complete: the original is backed up if that was not done
    yet and the new file is switched in; except when ``store.duckdb`` has a WAL, which then
    belongs to the legacy file (switching would lose it): the adopted copy is dropped and the
    workspace simply gets adopted again.
    """
    paths = _Paths(Path(workspace_path) / DB_FILENAME)
    if paths.adopting.exists():
        _unlink(paths.adopting, _wal(paths.adopting))
    if paths.backup_tmp.exists():
        _unlink(paths.backup_tmp)
    if not paths.adopted.exists():
        return
    if paths.db.exists():
        if _wal(paths.adopted).exists() or _wal(paths.db).exists():
            _unlink(paths.adopted, _wal(paths.adopted))  # cannot roll forward safely
            return
        if not paths.backup.exists():
            _make_backup(paths)
    os.replace(paths.adopted, paths.db)
    fsync_dir(paths.db.parent)


# --------------------------------------------------------------------------- report


@dataclass
class TableReport:
    """One table of an adoption: rows copied and what changed shape on the way."""

    name: str
    rows: int
    extra_columns: tuple[str, ...] = ()
    missing_columns: tuple[str, ...] = ()
    filled: dict[str, int] = field(default_factory=dict)


@dataclass
class AdoptionReport:
    """What an adoption did (or, with ``dry_run``, would do)."""

    workspace: Path
    status: AdoptionStatus
    written_by: str | None = None
    tables: list[TableReport] = field(default_factory=list)
    views: tuple[str, ...] = ()
    ref_counts_changed: int = 0
    dangling_references: tuple[str, ...] = ()
    backup: Path | None = None

    def rows(self) -> dict[str, int]:
        return {t.name: t.rows for t in self.tables}

    def describe(self) -> str:
        """A human-readable account, what ``db adopt --dry-run`` prints."""
        head = {
            "adopted": "adopted the legacy nirs4all workspace",
            "would_adopt": "would adopt the legacy nirs4all workspace (dry run, nothing written)",
            "already_current": "already at the nirs4all-store schema: nothing to adopt",
            "empty": "empty database: nothing to adopt",
        }[self.status]
        lines = [f"{self.workspace}: {head}"]
        if self.written_by:
            lines.append(f"  file written by DuckDB {self.written_by}")
        for t in self.tables:
            line = f"  {t.name}: {t.rows} rows"
            if t.extra_columns:
                line += f"; legacy columns kept: {', '.join(t.extra_columns)}"
            if t.missing_columns:
                line += f"; absent, left NULL/default: {', '.join(t.missing_columns)}"
            if any(t.filled.values()):
                fills = ", ".join(f"{c}={n}" for c, n in t.filled.items() if n)
                line += f"; NULLs given the legacy default: {fills}"
            lines.append(line)
        if self.views:
            lines.append(f"  views recreated: {', '.join(self.views)}")
        if self.tables:
            lines.append(
                f"  artifacts whose ref_count is recomputed to a new value: "
                f"{self.ref_counts_changed}"
            )
            lines.append("  timestamps are naive in the legacy file and taken as UTC")
        if self.dangling_references:
            lines.append(
                f"  chains reference {len(self.dangling_references)} missing artifact id(s): "
                + ", ".join(self.dangling_references[:5])
            )
        if self.backup is not None:
            lines.append(f"  original kept as {self.backup}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- inspection


@dataclass
class _Plan:
    status: AdoptionStatus
    written_by: str | None
    legacy_columns: dict[str, dict[str, tuple[str, bool]]] = field(default_factory=dict)
    tables: list[TableReport] = field(default_factory=list)
    views: tuple[str, ...] = ()
    refs: dict[str, tuple[int, dt.datetime | None]] = field(default_factory=dict)
    ref_counts_changed: int = 0
    dangling: tuple[str, ...] = ()


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _target_columns(table: str) -> list[tuple[str, bool]]:
    """(name, nullable) of our table at head, from the models (which the migrations match)."""
    return [(c.name, bool(c.nullable)) for c in Base.metadata.tables[table].columns]


def _schema_objects(
    con: duckdb.DuckDBPyConnection, alias: str
) -> tuple[dict[str, dict[str, tuple[str, bool]]], list[str], list[str]]:
    """Columns of the main-schema tables, tables in other schemas, and user views."""
    columns: dict[str, dict[str, tuple[str, bool]]] = {}
    for table, column, dtype, nullable in con.execute(
        "SELECT table_name, column_name, data_type, is_nullable FROM duckdb_columns() "
        "WHERE database_name = ? AND schema_name = 'main' ORDER BY table_name, column_index",
        [alias],
    ).fetchall():
        columns.setdefault(table, {})[column] = (dtype, bool(nullable))
    other = [
        f"{schema}.{name}"
        for schema, name in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE database_name = ? AND schema_name <> 'main'",
            [alias],
        ).fetchall()
    ]
    views = [
        name
        for (name,) in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE database_name = ? AND NOT internal",
            [alias],
        ).fetchall()
    ]
    tables = {
        name
        for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ? "
            "AND schema_name = 'main'",
            [alias],
        ).fetchall()
    }
    return {t: c for t, c in columns.items() if t in tables}, other, views


def _inspect(con: duckdb.DuckDBPyConnection, db: Path, written_by: str | None) -> _Plan:
    """Classify the attached ``old`` database and plan the copy; raises before any write."""
    columns, other_schemas, views = _schema_objects(con, "old")
    if not columns and not other_schemas and not views:
        return _Plan("empty", written_by)
    if VERSION_TABLE in columns:
        return _Plan("already_current", written_by)

    unexpected: list[str] = [f"table {name} (outside the main schema)" for name in other_schemas]
    known_tables = set(CORE_TABLES) | set(OPTIONAL_TABLES)
    unexpected += [f"table {t}" for t in sorted(columns) if t not in known_tables]
    unexpected += [f"view {v}" for v in sorted(views) if v not in LEGACY_VIEWS]
    unexpected += [f"missing table {t}" for t in CORE_TABLES if t not in columns]
    for table in [t for t in (*OPTIONAL_TABLES, *CORE_TABLES) if t in columns]:
        target = dict(_target_columns(table))
        known = set(LEGACY_COLUMNS[table]) | set(target)
        unexpected += [f"column {table}.{c}" for c in columns[table] if c not in known]
        for name, nullable in target.items():
            if name in columns[table] or nullable or name in ("ref_count",):
                continue
            if name not in NOT_NULL_FILLS and name not in TIMESTAMP_FILL_COLUMNS:
                unexpected.append(f"missing column {table}.{name}")
    if unexpected:
        raise UnknownSchemaError(
            f"{db} matches neither the nirs4all-store schema (no {VERSION_TABLE} table) nor "
            f"the legacy nirs4all schema; unexpected: {'; '.join(unexpected)}. "
            "Nothing was written."
        )

    plan = _Plan("would_adopt", written_by, legacy_columns=columns)
    plan.views = tuple(v for v in LEGACY_VIEWS if v in views)
    problems: list[str] = []
    for table in [t for t in (*OPTIONAL_TABLES, *CORE_TABLES) if t in columns]:
        legacy = columns[table]
        target = _target_columns(table)
        report = TableReport(
            table,
            rows=con.execute(f"SELECT count(*) FROM old.main.{_q(table)}").fetchone()[0],
            extra_columns=tuple(c for c in LEGACY_EXTRA_COLUMNS.get(table, ()) if c in legacy),
            missing_columns=tuple(
                n
                for n, _ in target
                if n not in legacy and n not in ("ref_count", "referenced_at", "natural_key")
            ),
        )
        for name, nullable in target:
            if nullable or name not in legacy or not legacy[name][1] or name == "ref_count":
                continue
            nulls = con.execute(
                f"SELECT count(*) FROM old.main.{_q(table)} WHERE {_q(name)} IS NULL"
            ).fetchone()[0]
            if name in NOT_NULL_FILLS or name in TIMESTAMP_FILL_COLUMNS:
                report.filled[name] = nulls
            elif nulls:
                problems.append(
                    f"{table}.{name} has {nulls} NULL value(s), the new schema requires one"
                )
        plan.tables.append(report)
    if "y_proba" in columns["prediction_arrays"]:
        bad = [
            pid
            for (pid,) in con.execute(
                f"SELECT prediction_id FROM old.main.prediction_arrays "
                f"WHERE y_proba IS NOT NULL AND len(y_proba) > 0 AND NOT coalesce("
                f"{_n_samples_sql(columns['prediction_arrays'])} > 0 AND "
                f"len(y_proba) % {_n_samples_sql(columns['prediction_arrays'])} = 0, false) "
                "ORDER BY prediction_id"
            ).fetchall()
        ]
        if bad:
            problems.append(
                f"prediction_arrays.y_proba of {len(bad)} prediction(s) ({', '.join(bad[:5])}) "
                "is not n_samples x n_classes (its length is not a multiple of len(y_pred))"
            )
    duplicates = con.execute(
        f"SELECT pipeline_id, chain_id, fold_id, partition, model_name, branch_id, count(*) "
        f"FROM old.main.predictions GROUP BY {NATURAL_KEY_SQL}, pipeline_id, chain_id, "
        "fold_id, partition, model_name, branch_id HAVING count(*) > 1 LIMIT 5"
    ).fetchall()
    if duplicates:
        problems.append(
            "several predictions share one natural key (pipeline, chain, fold, partition, "
            f"model, branch), e.g. {duplicates!r}; the new schema stores each once"
        )
    for table in ("predictions", "prediction_arrays"):  # UUID keys on DuckDB (revision 0005)
        bad = [
            repr(pid)
            for (pid,) in con.execute(
                f"SELECT prediction_id FROM old.main.{table} "
                "WHERE TRY_CAST(prediction_id AS UUID) IS NULL ORDER BY prediction_id LIMIT 5"
            ).fetchall()
        ]
        if bad:
            problems.append(
                f"{table}.prediction_id holds ids that are not UUIDs ({', '.join(bad)}); "
                "prediction ids are stored as UUIDs"
            )
    if problems:
        raise AdoptionError(
            f"cannot adopt {db}: {'; '.join(problems)}. The legacy workspace is untouched; "
            "nothing was written."
        )
    _plan_ref_counts(con, plan, columns)
    return plan


def _n_samples_sql(legacy: dict[str, tuple[str, bool]]) -> str:
    lengths = [f"len({c})" for c in ("y_pred", "y_true", "sample_indices") if c in legacy]
    return f"coalesce({', '.join(lengths)})" if lengths else "NULL"


def _plan_ref_counts(
    con: duckdb.DuckDBPyConnection, plan: _Plan, columns: dict[str, dict[str, tuple[str, bool]]]
) -> None:
    chain_cols = columns["chains"]
    fold = "fold_artifacts" if "fold_artifacts" in chain_cols else "NULL"
    shared = "shared_artifacts" if "shared_artifacts" in chain_cols else "NULL"
    created = "created_at" if "created_at" in chain_cols else "NULL"
    counts: dict[str, int] = {}
    first: dict[str, dt.datetime | None] = {}
    for fold_value, shared_value, created_at in con.execute(
        f"SELECT {fold}, {shared}, {created} FROM old.main.chains"
    ).fetchall():
        for artifact_id in chain_artifact_ids(fold_value, shared_value):
            counts[artifact_id] = counts.get(artifact_id, 0) + 1
            previous = first.get(artifact_id)
            if created_at is not None and (previous is None or created_at < previous):
                first[artifact_id] = created_at
            else:
                first.setdefault(artifact_id, None)
    has_ref = "ref_count" in columns["artifacts"]
    old_counts = dict(
        con.execute(
            f"SELECT artifact_id, {'ref_count' if has_ref else 'NULL'} FROM old.main.artifacts"
        ).fetchall()
    )
    plan.refs = {a: (n, first[a]) for a, n in counts.items() if a in old_counts}
    plan.dangling = tuple(sorted(a for a in counts if a not in old_counts))
    plan.ref_counts_changed = sum(
        1 for a, old in old_counts.items() if old != plan.refs.get(a, (0, None))[0]
    )


# --------------------------------------------------------------------------- copy


def _select_expr(
    table: str, name: str, nullable: bool, legacy: dict[str, tuple[str, bool]], fill_time: str
) -> str:
    if table == "artifacts" and name == "ref_count":
        return "0"
    if table == "predictions" and name == "natural_key":
        return NATURAL_KEY_SQL
    if name not in legacy:
        if nullable:
            return "NULL"
        return NOT_NULL_FILLS.get(name, fill_time)
    expr = _q(name)
    if table == "prediction_arrays" and name == "y_proba":
        n = _n_samples_sql(legacy)
        expr = (
            "CASE WHEN y_proba IS NULL THEN NULL "
            "WHEN len(y_proba) = 0 THEN []::DOUBLE[][] "
            f"ELSE list_transform(range({n}), lambda i: y_proba[i * (len(y_proba) // {n}) + 1 "
            f": (i + 1) * (len(y_proba) // {n})])::DOUBLE[][] END"
        )
    elif table == "prediction_arrays" and name == "sample_indices":
        expr = "sample_indices::BIGINT[]"
    if not nullable and legacy[name][1]:
        fill = NOT_NULL_FILLS.get(name, fill_time if name in TIMESTAMP_FILL_COLUMNS else None)
        if fill is not None:
            expr = f"coalesce({expr}, {fill})"
    return expr


def _copy_all(con: duckdb.DuckDBPyConnection, plan: _Plan, started: dt.datetime) -> None:
    """Copy every table and recompute ref counts in one transaction of the new database."""
    fill_time = f"TIMESTAMP '{started.isoformat(sep=' ')}'"
    con.execute("BEGIN")
    try:
        for report in plan.tables:
            table, legacy = report.name, plan.legacy_columns[report.name]
            target = _target_columns(table)
            names = ", ".join(_q(n) for n, _ in target)
            exprs = ", ".join(_select_expr(table, n, nl, legacy, fill_time) for n, nl in target)
            con.execute(
                f"INSERT INTO new.main.{_q(table)} ({names}) "
                f"SELECT {exprs} FROM old.main.{_q(table)}"
            )
            _step(f"copied:{table}")
        if plan.refs:
            ids = list(plan.refs)
            con.execute(
                "UPDATE new.main.artifacts AS a SET ref_count = r.n, referenced_at = r.first_ref "
                "FROM (SELECT unnest(?::VARCHAR[]) AS artifact_id, unnest(?::INTEGER[]) AS n, "
                "unnest(?::TIMESTAMP[]) AS first_ref) AS r WHERE a.artifact_id = r.artifact_id",
                [ids, [plan.refs[a][0] for a in ids], [plan.refs[a][1] or started for a in ids]],
            )
        for report in plan.tables:
            got = con.execute(f"SELECT count(*) FROM new.main.{_q(report.name)}").fetchone()[0]
            if got != report.rows:
                raise AdoptionError(f"copied {got} rows of {report.name}, expected {report.rows}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _attach(con: duckdb.DuckDBPyConnection, path: Path, alias: str, *, read_only: bool) -> None:
    options = " (READ_ONLY)" if read_only else ""
    literal = str(path).replace("'", "''")
    try:
        con.execute(f"ATTACH '{literal}' AS {alias}{options}")
    except duckdb.Error as exc:
        if is_lock_error(exc):
            raise locked_error(str(path), exc, 0.0) from None
        raise unreadable_database_error(path, exc) from exc


def _fold_legacy_wal(con: duckdb.DuckDBPyConnection, paths: _Paths) -> None:
    """A legacy WAL would be separated from its file by the backup: fold it in first.

    Opening read-write and checkpointing only applies the file's own committed work (what
    any open by the legacy store did), so the legacy data are unchanged.
    """
    if not _wal(paths.db).exists():
        return
    _attach(con, paths.db, "old_rw", read_only=False)
    con.execute("CHECKPOINT old_rw")
    con.execute("DETACH old_rw")
    if _wal(paths.db).exists():
        raise AdoptionError(
            f"{_wal(paths.db)} could not be folded into {paths.db}; the legacy workspace is "
            "untouched: open it once with the legacy nirs4all store, then adopt again"
        )


def _build_new_database(paths: _Paths) -> None:
    """An empty database at our schema head, written at ``.adopting``."""
    _unlink(paths.adopting, _wal(paths.adopting))
    engine = create_store_engine(duckdb_url(paths.adopting))
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def adopt_legacy_workspace(workspace_path: str | Path, *, dry_run: bool = False) -> AdoptionReport:
    """Adopt the legacy nirs4all ``store.duckdb`` of `workspace_path` (see module docstring).

    Returns what was done; with `dry_run` what would be done, writing nothing. A database
    already at our schema, or empty, is left alone (status says so). Raises
    `UnknownSchemaError` for a database that is neither legacy nor ours, `AdoptionError`
    (message says which database is intact) when adoption fails.
    """
    workspace = Path(workspace_path)
    paths = _Paths(workspace / DB_FILENAME)
    if not dry_run:
        recover_interrupted_adoption(workspace)
    if not paths.db.is_file():
        raise AdoptionError(f"no {DB_FILENAME} in {workspace}: nothing to adopt")
    header = read_duckdb_header(paths.db)
    written_by = header.writer if header else None
    con = duckdb.connect(":memory:")
    try:
        if not dry_run:
            _fold_legacy_wal(con, paths)
        _attach(con, paths.db, "old", read_only=True)
        plan = _inspect(con, paths.db, written_by)
        report = AdoptionReport(
            workspace,
            plan.status,
            written_by,
            plan.tables,
            plan.views,
            plan.ref_counts_changed,
            plan.dangling,
        )
        if plan.status != "would_adopt" or dry_run:
            return report
        if paths.backup.exists():
            raise AdoptionError(
                f"{paths.backup} already exists (an earlier adoption's backup?): move it away "
                f"and retry. The legacy workspace {paths.db} is untouched; nothing was written."
            )
        started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        try:
            _step("start")
            _build_new_database(paths)
            _step("built")
            _attach(con, paths.adopting, "new", read_only=False)
            _copy_all(con, plan, started)
            con.execute("CHECKPOINT new")
            con.execute("DETACH new")
            if _wal(paths.adopting).exists():
                raise AdoptionError(f"{_wal(paths.adopting)} remained after the checkpoint")
            fsync_file(paths.adopting)
            _step("copied")
        except Exception as exc:
            _discard_partial(con, paths)
            raise AdoptionError(
                f"adopting {paths.db} failed while building the new database: {exc}. The "
                f"legacy workspace is untouched ({paths.db} is the original file); the "
                "partial new database was removed."
            ) from exc
        except BaseException:
            _discard_partial(con, paths)
            raise
        try:
            os.replace(paths.adopting, paths.adopted)
            fsync_dir(workspace)
            _step("adopted")
            _make_backup(paths)
            _step("backed_up")
            con.execute("DETACH old")
            os.replace(paths.adopted, paths.db)
            fsync_dir(workspace)
            _step("switched")
        except Exception as exc:
            if paths.adopted.exists():
                raise AdoptionError(
                    f"switching {paths.db} to the adopted database failed: {exc}. {paths.db} "
                    f"is still the untouched legacy file; the complete adopted database is "
                    f"{paths.adopted} and is switched in by recover_interrupted_adoption() at "
                    "the next open."
                ) from exc
            raise AdoptionError(
                f"the adoption of {paths.db} is complete ({paths.db} is the adopted database, "
                f"{paths.backup} the original) but a final step failed: {exc}"
            ) from exc
        report.status = "adopted"
        report.backup = paths.backup
        return report
    finally:
        con.close()


def _discard_partial(con: duckdb.DuckDBPyConnection, paths: _Paths) -> None:
    try:
        if con.execute(
            "SELECT count(*) FROM duckdb_databases() WHERE database_name = 'new'"
        ).fetchone()[0]:
            con.execute("DETACH new")
    except duckdb.Error:
        pass
    _unlink(paths.adopting, _wal(paths.adopting))
