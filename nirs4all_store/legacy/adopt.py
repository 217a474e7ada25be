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

The steps live in modules of one concern: `header` (which DuckDB wrote the file, attaching
it), `plan` (classifying the legacy file, every refusal, the ref counts), `copy` (building
and filling the new database) and `swap` (the crash-safe file switch, see its docstring, and
`recover_interrupted_adoption`, run before every open).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from nirs4all_store.db.engine import DB_FILENAME
from nirs4all_store.errors import AdoptionError
from nirs4all_store.legacy import nirs4all08
from nirs4all_store.legacy.copy import build_adopted_database
from nirs4all_store.legacy.header import attach, read_duckdb_header
from nirs4all_store.legacy.plan import AdoptionStatus, Plan, TableReport, inspect_legacy
from nirs4all_store.legacy.swap import (
    ADOPTED_SUFFIX,
    ADOPTING_SUFFIX,
    BACKUP_SUFFIX,
    AdoptionPaths,
    fold_legacy_wal,
    recover_interrupted_adoption,
    switch_in,
)

__all__ = [
    "ADOPTED_SUFFIX",
    "ADOPTING_SUFFIX",
    "BACKUP_SUFFIX",
    "AdoptionReport",
    "AdoptionStatus",
    "TableReport",
    "adopt_legacy_workspace",
    "recover_interrupted_adoption",
]

#: `AdoptionReport.written_by` of a workspace adopted from nirs4all 0.8's store.sqlite.
NIRS4ALL_SQLITE_WRITER = "nirs4all 0.8's SQLite store (store.sqlite, arrays/*.parquet)"

#: Test hook: called with the name of each step boundary (tests kill the process there).
#: Read from this module at every step (the other modules get `_step`), so setting
#: ``nirs4all_store.legacy.adopt._on_step`` takes effect.
_on_step: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if _on_step is not None:
        _on_step(name)


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
        if self.written_by == NIRS4ALL_SQLITE_WRITER:
            lines.append(f"  read from {self.written_by}")
        elif self.written_by:
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


def _attach_legacy(
    con: duckdb.DuckDBPyConnection, workspace: Path, paths: AdoptionPaths, *, dry_run: bool
) -> str | None:
    """Attach the legacy data as ``old``: the v4 file itself, or a nirs4all 0.8 workspace
    staged into the v4 layout (`nirs4all08`). Returns who wrote it."""
    if not paths.db.is_file():  # adopt_legacy_workspace checked store.sqlite is there
        nirs4all08.stage_from_sqlite(con, workspace)
        return NIRS4ALL_SQLITE_WRITER
    header = read_duckdb_header(paths.db)
    written_by = header.writer if header else None
    if not dry_run:
        fold_legacy_wal(con, paths)
    attach(con, paths.db, "old", read_only=True)
    if nirs4all08.has_parquet_arrays(con, "old", workspace):
        con.execute("DETACH old")
        attach(con, paths.db, "n4a_src", read_only=True)
        nirs4all08.stage_from_duckdb(con, "n4a_src", workspace, paths.db)
        con.execute("DETACH n4a_src")
    return written_by


def _inspect_workspace(
    con: duckdb.DuckDBPyConnection, workspace: Path, paths: AdoptionPaths, *, dry_run: bool
) -> tuple[Plan, AdoptionReport]:
    """Attach the legacy file as ``old`` and plan its adoption (raises before any write)."""
    written_by = _attach_legacy(con, workspace, paths, dry_run=dry_run)
    plan = inspect_legacy(con, paths.db, written_by)
    report = AdoptionReport(
        workspace,
        plan.status,
        written_by,
        plan.tables,
        plan.views,
        plan.ref_counts_changed,
        plan.dangling,
    )
    return plan, report


def adopt_legacy_workspace(workspace_path: str | Path, *, dry_run: bool = False) -> AdoptionReport:
    """Adopt the legacy nirs4all ``store.duckdb`` of `workspace_path` (see module docstring).

    Returns what was done; with `dry_run` what would be done, writing nothing. A database
    already at our schema, or empty, is left alone (status says so). Raises
    `UnknownSchemaError` for a database that is neither legacy nor ours, `AdoptionError`
    (message says which database is intact) when adoption fails.
    """
    workspace = Path(workspace_path)
    paths = AdoptionPaths(workspace / DB_FILENAME)
    if not dry_run:
        recover_interrupted_adoption(workspace)
    from_sqlite = not paths.db.is_file() and (workspace / nirs4all08.SQLITE_FILENAME).is_file()
    if not paths.db.is_file() and not from_sqlite:
        raise AdoptionError(
            f"no {DB_FILENAME} (nor nirs4all 0.8's {nirs4all08.SQLITE_FILENAME}) in "
            f"{workspace}: nothing to adopt"
        )
    con = duckdb.connect(":memory:")
    try:
        plan, report = _inspect_workspace(con, workspace, paths, dry_run=dry_run)
        if plan.status != "would_adopt" or dry_run:
            return report
        if paths.backup.exists() and not from_sqlite:
            raise AdoptionError(
                f"{paths.backup} already exists (an earlier adoption's backup?): move it away "
                f"and retry. The legacy workspace {paths.db} is untouched; nothing was written."
            )
        started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        build_adopted_database(con, paths, plan, started, _step)
        # From store.sqlite the original is never moved or replaced: it is its own backup.
        switch_in(con, paths, _step, backup=not from_sqlite)
        report.status = "adopted"
        report.backup = (
            paths.db.with_name(nirs4all08.SQLITE_FILENAME) if from_sqlite else (paths.backup)
        )
        return report
    finally:
        con.close()
