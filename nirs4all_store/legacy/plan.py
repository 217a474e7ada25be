"""Inspecting an attached legacy file: is it legacy, ours or empty, and what would be copied.

Everything that could refuse an adoption is checked here, before anything is written: an
unknown schema (`UnknownSchemaError`), NULLs the new schema cannot take, a y_proba that is
not n_samples x n_classes, duplicate natural keys, empty or colliding prediction ids
(`AdoptionError`). The ref counts are recomputed here too (the rules are in the docstring of
`nirs4all_store.legacy.adopt`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import duckdb

from nirs4all_store.db.migrate import VERSION_TABLE
from nirs4all_store.errors import AdoptionError, UnknownSchemaError
from nirs4all_store.legacy.ids import register_prediction_id_udf, stored_id_sql
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

__all__ = [
    "AdoptionStatus",
    "LegacyColumns",
    "Plan",
    "TableReport",
    "inspect_legacy",
    "n_samples_sql",
    "quote",
    "target_columns",
]

AdoptionStatus = Literal["adopted", "would_adopt", "already_current", "empty"]

#: column -> (DuckDB type, nullable) of one legacy table.
LegacyColumns = dict[str, tuple[str, bool]]


@dataclass
class TableReport:
    """One table of an adoption: rows copied and what changed shape on the way."""

    name: str
    rows: int
    extra_columns: tuple[str, ...] = ()
    missing_columns: tuple[str, ...] = ()
    filled: dict[str, int] = field(default_factory=dict)


@dataclass
class Plan:
    status: AdoptionStatus
    written_by: str | None
    legacy_columns: dict[str, LegacyColumns] = field(default_factory=dict)
    tables: list[TableReport] = field(default_factory=list)
    views: tuple[str, ...] = ()
    refs: dict[str, tuple[int, dt.datetime | None]] = field(default_factory=dict)
    ref_counts_changed: int = 0
    dangling: tuple[str, ...] = ()


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def target_columns(table: str) -> list[tuple[str, bool]]:
    """(name, nullable) of our table at head, from the models (which the migrations match)."""
    return [(c.name, bool(c.nullable)) for c in Base.metadata.tables[table].columns]


def n_samples_sql(legacy: LegacyColumns) -> str:
    lengths = [f"len({c})" for c in ("y_pred", "y_true", "sample_indices") if c in legacy]
    return f"coalesce({', '.join(lengths)})" if lengths else "NULL"


def _schema_objects(
    con: duckdb.DuckDBPyConnection, alias: str
) -> tuple[dict[str, LegacyColumns], list[str], list[str]]:
    """Columns of the main-schema tables, tables in other schemas, and user views."""
    columns: dict[str, LegacyColumns] = {}
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


def _present_tables(columns: dict[str, LegacyColumns]) -> list[str]:
    """The known tables the legacy file has, in copy order (optional ones first)."""
    return [t for t in (*OPTIONAL_TABLES, *CORE_TABLES) if t in columns]


def _check_legacy_schema(
    db: Path, columns: dict[str, LegacyColumns], other_schemas: list[str], views: list[str]
) -> None:
    """Raise `UnknownSchemaError` unless every table, view and column is a legacy one."""
    unexpected: list[str] = [f"table {name} (outside the main schema)" for name in other_schemas]
    known_tables = set(CORE_TABLES) | set(OPTIONAL_TABLES)
    unexpected += [f"table {t}" for t in sorted(columns) if t not in known_tables]
    unexpected += [f"view {v}" for v in sorted(views) if v not in LEGACY_VIEWS]
    unexpected += [f"missing table {t}" for t in CORE_TABLES if t not in columns]
    for table in _present_tables(columns):
        target = dict(target_columns(table))
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


def _table_report(
    con: duckdb.DuckDBPyConnection, table: str, legacy: LegacyColumns, problems: list[str]
) -> TableReport:
    """Rows, kept and absent columns of `table`; NULLs we fill are counted, others refused."""
    target = target_columns(table)
    report = TableReport(
        table,
        rows=con.execute(f"SELECT count(*) FROM old.main.{quote(table)}").fetchone()[0],
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
            f"SELECT count(*) FROM old.main.{quote(table)} WHERE {quote(name)} IS NULL"
        ).fetchone()[0]
        if name in NOT_NULL_FILLS or name in TIMESTAMP_FILL_COLUMNS:
            report.filled[name] = nulls
        elif nulls:
            problems.append(
                f"{table}.{name} has {nulls} NULL value(s), the new schema requires one"
            )
    return report


def _y_proba_problems(con: duckdb.DuckDBPyConnection, arrays: LegacyColumns) -> list[str]:
    """Predictions whose flat y_proba is not n_samples x n_classes (see the adopt rules)."""
    if "y_proba" not in arrays:
        return []
    bad = [
        pid
        for (pid,) in con.execute(
            f"SELECT prediction_id FROM old.main.prediction_arrays "
            f"WHERE y_proba IS NOT NULL AND len(y_proba) > 0 AND NOT coalesce("
            f"{n_samples_sql(arrays)} > 0 AND "
            f"len(y_proba) % {n_samples_sql(arrays)} = 0, false) "
            "ORDER BY prediction_id"
        ).fetchall()
    ]
    if not bad:
        return []
    return [
        f"prediction_arrays.y_proba of {len(bad)} prediction(s) ({', '.join(bad[:5])}) "
        "is not n_samples x n_classes (its length is not a multiple of len(y_pred))"
    ]


def _prediction_key_problems(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Duplicate natural keys, and prediction ids that cannot be stored as UUIDs."""
    problems: list[str] = []
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
    register_prediction_id_udf(con)
    for table in ("predictions", "prediction_arrays"):  # UUID keys on DuckDB (revision 0005)
        # Any non-empty id is kept (a UUID) or stored as its uuid5 (`legacy.ids`); refused:
        # empty ids, and two spellings of one UUID, which would collide once stored.
        empty = con.execute(
            f"SELECT count(*) FROM old.main.{table} "
            "WHERE prediction_id IS NULL OR prediction_id::VARCHAR = ''"
        ).fetchone()[0]
        if empty:
            problems.append(f"{table}.prediction_id is empty in {empty} row(s)")
        collide = [
            repr(pid)
            for (pid,) in con.execute(
                f"SELECT prediction_id FROM (SELECT prediction_id::VARCHAR AS prediction_id, "
                f"count(*) OVER (PARTITION BY {stored_id_sql('prediction_id')}) AS n "
                f"FROM old.main.{table} WHERE prediction_id::VARCHAR <> '') WHERE n > 1 "
                "ORDER BY prediction_id LIMIT 5"
            ).fetchall()
        ]
        if collide:
            problems.append(
                f"{table}.prediction_id holds spellings of one id ({', '.join(collide)}): "
                "they would be the same UUID once stored"
            )
    return problems


def inspect_legacy(con: duckdb.DuckDBPyConnection, db: Path, written_by: str | None) -> Plan:
    """Classify the attached ``old`` database and plan the copy; raises before any write."""
    columns, other_schemas, views = _schema_objects(con, "old")
    if not columns and not other_schemas and not views:
        return Plan("empty", written_by)
    if VERSION_TABLE in columns:
        return Plan("already_current", written_by)
    _check_legacy_schema(db, columns, other_schemas, views)

    plan = Plan("would_adopt", written_by, legacy_columns=columns)
    plan.views = tuple(v for v in LEGACY_VIEWS if v in views)
    problems: list[str] = []
    for table in _present_tables(columns):
        plan.tables.append(_table_report(con, table, columns[table], problems))
    problems += _y_proba_problems(con, columns["prediction_arrays"])
    problems += _prediction_key_problems(con)
    if problems:
        raise AdoptionError(
            f"cannot adopt {db}: {'; '.join(problems)}. The legacy workspace is untouched; "
            "nothing was written."
        )
    _plan_ref_counts(con, plan, columns)
    return plan


def _plan_ref_counts(
    con: duckdb.DuckDBPyConnection, plan: Plan, columns: dict[str, LegacyColumns]
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
