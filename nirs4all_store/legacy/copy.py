"""Building the adopted database: our schema head at ``.adopting``, every legacy row copied.

Each table is copied with one set-based ``INSERT ... SELECT`` from the legacy file attached
READ_ONLY as ``old`` into the new one attached as ``new`` (identical ids, values, JSON text
and arrays), in one transaction that also recomputes the artifact ref counts. How values
change shape on the way (NULL fills, y_proba, sample_indices) is set out in the docstring of
`nirs4all_store.legacy.adopt`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import duckdb

from nirs4all_store.db.engine import create_store_engine, duckdb_url
from nirs4all_store.db.migrate import upgrade
from nirs4all_store.durable import fsync_file
from nirs4all_store.errors import AdoptionError
from nirs4all_store.legacy.header import attach
from nirs4all_store.legacy.ids import register_prediction_id_udf, stored_id_sql
from nirs4all_store.legacy.plan import LegacyColumns, Plan, n_samples_sql, quote, target_columns
from nirs4all_store.legacy.schema import NOT_NULL_FILLS, TIMESTAMP_FILL_COLUMNS
from nirs4all_store.legacy.swap import AdoptionPaths, unlink, wal
from nirs4all_store.repositories.predictions import NATURAL_KEY_SQL

__all__ = ["build_adopted_database", "copy_all"]


def _select_expr(
    table: str, name: str, nullable: bool, legacy: LegacyColumns, fill_time: str
) -> str:
    if table == "artifacts" and name == "ref_count":
        return "0"
    if table == "predictions" and name == "natural_key":
        return NATURAL_KEY_SQL
    if table in ("predictions", "prediction_arrays") and name == "prediction_id":
        return stored_id_sql(quote(name))  # 16-character nirs4all ids: their uuid5
    if name not in legacy:
        if nullable:
            return "NULL"
        return NOT_NULL_FILLS.get(name, fill_time)
    expr = quote(name)
    if table == "prediction_arrays" and name == "y_proba":
        n = n_samples_sql(legacy)
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


def copy_all(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    started: dt.datetime,
    step: Callable[[str], None],
) -> None:
    """Copy every table and recompute ref counts in one transaction of the new database."""
    fill_time = f"TIMESTAMP '{started.isoformat(sep=' ')}'"
    register_prediction_id_udf(con)
    con.execute("BEGIN")
    try:
        for report in plan.tables:
            table, legacy = report.name, plan.legacy_columns[report.name]
            target = target_columns(table)
            names = ", ".join(quote(n) for n, _ in target)
            exprs = ", ".join(_select_expr(table, n, nl, legacy, fill_time) for n, nl in target)
            con.execute(
                f"INSERT INTO new.main.{quote(table)} ({names}) "
                f"SELECT {exprs} FROM old.main.{quote(table)}"
            )
            step(f"copied:{table}")
        if plan.refs:
            ids = list(plan.refs)
            con.execute(
                "UPDATE new.main.artifacts AS a SET ref_count = r.n, referenced_at = r.first_ref "
                "FROM (SELECT unnest(?::VARCHAR[]) AS artifact_id, unnest(?::INTEGER[]) AS n, "
                "unnest(?::TIMESTAMP[]) AS first_ref) AS r WHERE a.artifact_id = r.artifact_id",
                [ids, [plan.refs[a][0] for a in ids], [plan.refs[a][1] or started for a in ids]],
            )
        for report in plan.tables:
            got = con.execute(f"SELECT count(*) FROM new.main.{quote(report.name)}").fetchone()[0]
            if got != report.rows:
                raise AdoptionError(f"copied {got} rows of {report.name}, expected {report.rows}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _build_new_database(paths: AdoptionPaths) -> None:
    """An empty database at our schema head, written at ``.adopting``."""
    unlink(paths.adopting, wal(paths.adopting))
    engine = create_store_engine(duckdb_url(paths.adopting))
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def _discard_partial(con: duckdb.DuckDBPyConnection, paths: AdoptionPaths) -> None:
    try:
        if con.execute(
            "SELECT count(*) FROM duckdb_databases() WHERE database_name = 'new'"
        ).fetchone()[0]:
            con.execute("DETACH new")
    except duckdb.Error:
        pass
    unlink(paths.adopting, wal(paths.adopting))


def build_adopted_database(
    con: duckdb.DuckDBPyConnection,
    paths: AdoptionPaths,
    plan: Plan,
    started: dt.datetime,
    step: Callable[[str], None],
) -> None:
    """Build ``.adopting`` complete: schema, copy, checkpoint (no WAL left), fsync.

    On any failure the partial ``.adopting`` is removed (the legacy file was only read);
    `step` is called at each step boundary.
    """
    try:
        step("start")
        _build_new_database(paths)
        step("built")
        attach(con, paths.adopting, "new", read_only=False)
        copy_all(con, plan, started, step)
        con.execute("CHECKPOINT new")
        con.execute("DETACH new")
        if wal(paths.adopting).exists():
            raise AdoptionError(f"{wal(paths.adopting)} remained after the checkpoint")
        fsync_file(paths.adopting)
        step("copied")
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
