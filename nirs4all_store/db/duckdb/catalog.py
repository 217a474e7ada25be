"""The queries over DuckDB's catalogue functions that DuckDB reflection answers from.

`duckdb_tables()`, `duckdb_views()`, `duckdb_columns()`, `duckdb_constraints()` and
`duckdb_indexes()` are read here and their rows turned into the dicts SQLAlchemy's
reflection returns; `nirs4all_store.db.duckdb.reflection` wires them into a dialect.
Relations are matched by oid, so tables of the same name in other schemas, attached
databases or the temporary schema never mix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.engine.reflection import ObjectKind, ObjectScope

from nirs4all_store.db.duckdb.parsing import (
    index_column_name,
    parse_duckdb_type,
    split_index_expressions,
)

__all__ = [
    "Relation",
    "TableKey",
    "read_columns",
    "read_constraints",
    "read_indexes",
    "read_relations",
    "read_scope",
]

TableKey = tuple[str | None, str]


@dataclass(frozen=True)
class Relation:
    name: str
    oid: int
    kind: ObjectKind
    temporary: bool
    comment: str | None


def read_scope(connection: Connection, preparer: Any, schema: str | None) -> tuple[str, str]:
    """(database, schema) to read: `schema` may be ``"db.schema"``; None means current."""
    database: str | None = None
    if schema is not None:
        database, schema = preparer._separate(schema)
    if database is None or schema is None:
        current_db, current_schema = connection.execute(
            sa.text("SELECT current_database(), current_schema()")
        ).one()
        database = database or current_db
        schema = schema or current_schema
    return str(database), str(schema)


def read_relations(
    connection: Connection,
    database: str,
    schema_name: str,
    filter_names: Iterable[str] | None,
    scope: ObjectScope,
    kind: ObjectKind,
) -> list[Relation]:
    """The tables and views of (`database`, `schema_name`) (or temporary) that are asked for."""
    rows = connection.execute(
        sa.text(
            "SELECT table_name AS name, table_oid AS oid, 'table' AS kind, temporary, "
            "comment, database_name, schema_name FROM duckdb_tables() WHERE NOT internal "
            "UNION ALL "
            "SELECT view_name, view_oid, 'view', temporary, comment, database_name, "
            "schema_name FROM duckdb_views() WHERE NOT internal"
        )
    ).all()
    wanted = set(filter_names) if filter_names is not None else None
    relations: list[Relation] = []
    for name, oid, row_kind, temporary, comment, db_name, sch_name in rows:
        if wanted is not None and name not in wanted:
            continue
        object_kind = ObjectKind.TABLE if row_kind == "table" else ObjectKind.VIEW
        if object_kind not in kind:
            continue
        if temporary:
            if ObjectScope.TEMPORARY not in scope:
                continue
        elif ObjectScope.DEFAULT not in scope or (db_name, sch_name) != (
            database,
            schema_name,
        ):
            continue
        relations.append(Relation(name, int(oid), object_kind, bool(temporary), comment))
    return relations


def read_constraints(
    connection: Connection, relations: Sequence[Relation], constraint_type: str
) -> dict[int, list[Any]]:
    """The `duckdb_constraints()` rows of one type, by table oid, in constraint order."""
    oids = {rel.oid for rel in relations}
    rows = connection.execute(
        sa.text(
            "SELECT table_oid, constraint_name, constraint_column_names, expression, "
            "referenced_table, referenced_column_names, constraint_index "
            "FROM duckdb_constraints() WHERE constraint_type = :kind "
            "ORDER BY table_oid, constraint_index"
        ),
        {"kind": constraint_type},
    ).all()
    found: dict[int, list[Any]] = {oid: [] for oid in oids}
    for row in rows:
        if row[0] in oids:
            found[row[0]].append(row)
    return found


def read_columns(
    connection: Connection, relations: Sequence[Relation]
) -> dict[int, list[dict[str, Any]]]:
    """SQLAlchemy column dicts of each relation, by oid, in column order."""
    by_oid = {rel.oid: rel for rel in relations}
    # duckdb 1.4.4's duckdb_columns() has no is_generated / generation_expression (2.0 has):
    # there every column reads as not generated.
    available = set(connection.execute(sa.text("SELECT * FROM duckdb_columns() LIMIT 0")).keys())
    generated_sql = (
        "is_generated, generation_expression"
        if {"is_generated", "generation_expression"} <= available
        else "FALSE AS is_generated, NULL AS generation_expression"
    )
    rows = connection.execute(
        sa.text(
            "SELECT table_oid, column_name, data_type, is_nullable, column_default, "
            f"comment, {generated_sql} FROM duckdb_columns() "
            "ORDER BY table_oid, column_index"
        )
    ).all()
    columns: dict[int, list[dict[str, Any]]] = {oid: [] for oid in by_oid}
    for oid, name, data_type, nullable, default, comment, generated, gen_expr in rows:
        if oid not in by_oid:
            continue
        column: dict[str, Any] = {
            "name": name,
            "type": parse_duckdb_type(data_type),
            "nullable": bool(nullable),
            "default": None if generated else default,
            "autoincrement": bool(default and str(default).lower().startswith("nextval(")),
            "comment": comment,
        }
        if generated:
            column["computed"] = {"sqltext": gen_expr, "persisted": False}
        columns[oid].append(column)
    return columns


def read_indexes(
    connection: Connection, relations: Sequence[Relation]
) -> dict[int, list[dict[str, Any]]]:
    """SQLAlchemy index dicts (primary keys excluded) of each relation, by oid."""
    by_oid = {rel.oid: rel for rel in relations}
    column_rows = connection.execute(
        sa.text("SELECT table_oid, column_name FROM duckdb_columns()")
    ).all()
    table_columns: dict[int, set[str]] = {oid: set() for oid in by_oid}
    for oid, name in column_rows:
        if oid in table_columns:
            table_columns[oid].add(name)
    index_rows = connection.execute(
        sa.text(
            "SELECT table_oid, index_name, is_unique, expressions FROM duckdb_indexes() "
            "WHERE NOT is_primary ORDER BY table_oid, index_name"
        )
    ).all()
    indexes: dict[int, list[dict[str, Any]]] = {oid: [] for oid in by_oid}
    for oid, name, is_unique, expressions in index_rows:
        if oid not in by_oid:
            continue
        parts = split_index_expressions(expressions)
        names = [index_column_name(part, table_columns[oid]) for part in parts]
        index: dict[str, Any] = {
            "name": name,
            "column_names": names,
            "unique": bool(is_unique),
            "dialect_options": {},
        }
        if any(n is None for n in names):
            index["expressions"] = [
                n if n is not None else p for n, p in zip(names, parts, strict=True)
            ]
        indexes[oid].append(index)
    return indexes
