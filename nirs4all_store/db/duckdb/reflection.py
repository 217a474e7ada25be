"""Schema reflection for DuckDB, read from DuckDB's own catalogue functions.

duckdb-engine inherits PostgreSQL's reflection, which queries pg_catalog tables DuckDB lacks
(`pg_collation`, `REGCLASS`, `pg_inherits`); its `get_indexes` returns [] and check
constraints raise NotImplementedError (STACK_FACTS). Alembic's autogenerate and
`batch_alter_table` need all of it, so this module answers the same questions from
`duckdb_tables()`, `duckdb_views()`, `duckdb_columns()`, `duckdb_constraints()` and
`duckdb_indexes()` (the queries are in `nirs4all_store.db.duckdb.catalog`, the parsing of
the type names and index key lists they report in `nirs4all_store.db.duckdb.parsing`).

How it is hooked in: `install_duckdb_reflection(engine_or_connection)` switches *that one
dialect instance* (an engine's dialect, shared by its connections) to a subclass of its own
class carrying the methods of `DuckDBReflectionDialect`. Nothing global changes, so other users of
duckdb-engine in the same process keep their behaviour, and importing the package does not
patch anything. `nirs4all_store.db.duckdb.alembic_impl.DuckDBImpl` calls it whenever Alembic
opens a migration context on DuckDB, which is the only place the store needs reflection
(the runtime only uses `has_table`, which duckdb-engine answers correctly and is unchanged).
`DuckDBReflectionDialect` is the same thing as a plain dialect class, for code that builds
its own dialect.

Limits (DuckDB's, not this module's): DuckDB does not keep user-given constraint names
(a UNIQUE named `uq_x` is reported as `<table>_<columns>_key`), keeps no ON DELETE rules and
ignores VARCHAR lengths, so none of these can be reflected.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from duckdb_engine import Dialect as DuckDBEngineDialect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.engine.reflection import ObjectKind, ObjectScope, cache

from nirs4all_store.db.duckdb.catalog import (
    Relation,
    TableKey,
    read_columns,
    read_constraints,
    read_indexes,
    read_relations,
    read_scope,
)
from nirs4all_store.db.duckdb.parsing import parse_duckdb_type, split_index_expressions

__all__ = [
    "DuckDBReflectionDialect",
    "install_duckdb_reflection",
    "parse_duckdb_type",
    "split_index_expressions",
]


class DuckDBReflectionDialect(DuckDBEngineDialect):  # type: ignore[misc]
    """duckdb-engine's dialect with reflection answering from DuckDB's catalogue functions.

    The single-table methods of SQLAlchemy's DefaultDialect (get_columns, ...) delegate to
    the `get_multi_*` methods defined here.
    """

    supports_statement_cache = False  # as duckdb-engine's dialect (engine.py opts in per engine)
    nirs4all_duckdb_reflection = True

    # -- scoping ---------------------------------------------------------------------------

    def _duck_scope(self, connection: Connection, schema: str | None) -> tuple[str, str]:
        """(database, schema) to read: `schema` may be ``"db.schema"``; None means current."""
        preparer: Any = self.identifier_preparer  # type: ignore[attr-defined]
        return read_scope(connection, preparer, schema)

    def _duck_relations(
        self,
        connection: Connection,
        schema: str | None,
        filter_names: Iterable[str] | None,
        scope: ObjectScope,
        kind: ObjectKind,
    ) -> list[Relation]:
        database, schema_name = self._duck_scope(connection, schema)
        return read_relations(connection, database, schema_name, filter_names, scope, kind)

    # -- names -----------------------------------------------------------------------------

    @cache
    def get_temp_table_names(self, connection: Connection, **kw: Any) -> list[str]:
        rels = self._duck_relations(connection, None, None, ObjectScope.TEMPORARY, ObjectKind.TABLE)
        return [rel.name for rel in rels]

    @cache
    def get_temp_view_names(
        self, connection: Connection, schema: str | None = None, **kw: Any
    ) -> list[str]:
        rels = self._duck_relations(connection, None, None, ObjectScope.TEMPORARY, ObjectKind.VIEW)
        return [rel.name for rel in rels]

    @cache
    def get_materialized_view_names(
        self, connection: Connection, schema: str | None = None, **kw: Any
    ) -> list[str]:
        return []  # DuckDB has no materialized views

    @cache
    def get_sequence_names(
        self, connection: Connection, schema: str | None = None, **kw: Any
    ) -> list[str]:
        database, schema_name = self._duck_scope(connection, schema)
        rows = connection.execute(
            sa.text(
                "SELECT sequence_name FROM duckdb_sequences() "
                "WHERE database_name = :db AND schema_name = :schema ORDER BY sequence_name"
            ),
            {"db": database, "schema": schema_name},
        ).all()
        return [row[0] for row in rows]

    def has_sequence(
        self,
        connection: Connection,
        sequence_name: str,
        schema: str | None = None,
        **kw: Any,
    ) -> bool:
        return sequence_name in self.get_sequence_names(connection, schema, **kw)

    @cache
    def get_view_definition(
        self, connection: Connection, view_name: str, schema: str | None = None, **kw: Any
    ) -> str:
        rels = self._duck_relations(
            connection, schema, [view_name], ObjectScope.ANY, ObjectKind.VIEW
        )
        if not rels:
            raise sa.exc.NoSuchTableError(view_name)
        row = connection.execute(
            sa.text("SELECT sql FROM duckdb_views() WHERE view_oid = :oid"),
            {"oid": rels[0].oid},
        ).one()
        return str(row[0])

    # -- per-table facts -------------------------------------------------------------------

    def get_multi_columns(
        self,
        connection: Connection,
        schema: str | None = None,
        filter_names: Iterable[str] | None = None,
        scope: ObjectScope = ObjectScope.DEFAULT,
        kind: ObjectKind = ObjectKind.TABLE,
        **kw: Any,
    ) -> list[tuple[TableKey, list[dict[str, Any]]]]:
        relations = self._duck_relations(connection, schema, filter_names, scope, kind)
        by_oid = {rel.oid: rel for rel in relations}
        columns = read_columns(connection, relations)
        return [((schema, by_oid[oid].name), cols) for oid, cols in columns.items()]

    def get_multi_pk_constraint(
        self,
        connection: Connection,
        schema: str | None = None,
        filter_names: Iterable[str] | None = None,
        scope: ObjectScope = ObjectScope.DEFAULT,
        kind: ObjectKind = ObjectKind.TABLE,
        **kw: Any,
    ) -> list[tuple[TableKey, dict[str, Any]]]:
        relations = self._duck_relations(connection, schema, filter_names, scope, kind)
        found = read_constraints(connection, relations, "PRIMARY KEY")
        result: list[tuple[TableKey, dict[str, Any]]] = []
        for rel in relations:
            rows = found.get(rel.oid, [])
            if rows:
                pk = {"constrained_columns": list(rows[0][2]), "name": rows[0][1]}
            else:
                pk = {"constrained_columns": [], "name": None}
            result.append(((schema, rel.name), pk))
        return result

    def get_multi_foreign_keys(
        self,
        connection: Connection,
        schema: str | None = None,
        filter_names: Iterable[str] | None = None,
        scope: ObjectScope = ObjectScope.DEFAULT,
        kind: ObjectKind = ObjectKind.TABLE,
        **kw: Any,
    ) -> list[tuple[TableKey, list[dict[str, Any]]]]:
        relations = self._duck_relations(connection, schema, filter_names, scope, kind)
        found = read_constraints(connection, relations, "FOREIGN KEY")
        return [
            (
                (schema, rel.name),
                [
                    {
                        "name": row[1],
                        "constrained_columns": list(row[2]),
                        "referred_schema": schema,
                        "referred_table": row[4],
                        "referred_columns": list(row[5]),
                        "options": {},  # DuckDB has no ON DELETE/UPDATE rules
                    }
                    for row in found.get(rel.oid, [])
                ],
            )
            for rel in relations
        ]

    def get_multi_unique_constraints(
        self,
        connection: Connection,
        schema: str | None = None,
        filter_names: Iterable[str] | None = None,
        scope: ObjectScope = ObjectScope.DEFAULT,
        kind: ObjectKind = ObjectKind.TABLE,
        **kw: Any,
    ) -> list[tuple[TableKey, list[dict[str, Any]]]]:
        relations = self._duck_relations(connection, schema, filter_names, scope, kind)
        found = read_constraints(connection, relations, "UNIQUE")
        return [
            (
                (schema, rel.name),
                [{"name": row[1], "column_names": list(row[2])} for row in found.get(rel.oid, [])],
            )
            for rel in relations
        ]

    def get_multi_check_constraints(
        self,
        connection: Connection,
        schema: str | None = None,
        filter_names: Iterable[str] | None = None,
        scope: ObjectScope = ObjectScope.DEFAULT,
        kind: ObjectKind = ObjectKind.TABLE,
        **kw: Any,
    ) -> list[tuple[TableKey, list[dict[str, Any]]]]:
        relations = self._duck_relations(connection, schema, filter_names, scope, kind)
        found = read_constraints(connection, relations, "CHECK")
        return [
            (
                (schema, rel.name),
                [{"name": row[1], "sqltext": row[3]} for row in found.get(rel.oid, [])],
            )
            for rel in relations
        ]

    def get_multi_indexes(
        self,
        connection: Connection,
        schema: str | None = None,
        filter_names: Iterable[str] | None = None,
        scope: ObjectScope = ObjectScope.DEFAULT,
        kind: ObjectKind = ObjectKind.TABLE,
        **kw: Any,
    ) -> list[tuple[TableKey, list[dict[str, Any]]]]:
        relations = self._duck_relations(connection, schema, filter_names, scope, kind)
        by_oid = {rel.oid: rel for rel in relations}
        indexes = read_indexes(connection, relations)
        return [((schema, by_oid[oid].name), idx) for oid, idx in indexes.items()]

    @cache
    def get_indexes(
        self, connection: Connection, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[dict[str, Any]]:
        # duckdb-engine overrides this to return [] with a warning: answer it again.
        data = self.get_multi_indexes(
            connection,
            schema=schema,
            filter_names=[table_name],
            scope=ObjectScope.ANY,
            kind=ObjectKind.ANY,
            **kw,
        )
        for key, indexes in data:
            if key == (schema, table_name):
                return indexes
        raise sa.exc.NoSuchTableError(f"{schema}.{table_name}" if schema else table_name)

    def get_multi_table_comment(
        self,
        connection: Connection,
        schema: str | None = None,
        filter_names: Iterable[str] | None = None,
        scope: ObjectScope = ObjectScope.DEFAULT,
        kind: ObjectKind = ObjectKind.TABLE,
        **kw: Any,
    ) -> list[tuple[TableKey, dict[str, Any]]]:
        relations = self._duck_relations(connection, schema, filter_names, scope, kind)
        return [((schema, rel.name), {"text": rel.comment}) for rel in relations]

    def get_multi_table_options(
        self,
        connection: Connection,
        schema: str | None = None,
        filter_names: Iterable[str] | None = None,
        scope: ObjectScope = ObjectScope.DEFAULT,
        kind: ObjectKind = ObjectKind.TABLE,
        **kw: Any,
    ) -> list[tuple[TableKey, dict[str, Any]]]:
        relations = self._duck_relations(connection, schema, filter_names, scope, kind)
        return [((schema, rel.name), {}) for rel in relations]


_REFLECTING_CLASSES: dict[type, type] = {DuckDBEngineDialect: DuckDBReflectionDialect}


def _reflecting_class(cls: type) -> type:
    """`cls` with this module's reflection methods (a subclass of `cls`, made once).

    The methods are copied into a direct subclass rather than mixed in: Python only allows
    ``instance.__class__ = new`` between classes of the same base layout, which a mixin
    class in front of the dialect would break.
    """
    if getattr(cls, "nirs4all_duckdb_reflection", False):
        return cls
    if cls not in _REFLECTING_CLASSES:
        methods = {
            name: value
            for name, value in vars(DuckDBReflectionDialect).items()
            if not name.startswith("__")
        }
        methods["__module__"] = __name__
        _REFLECTING_CLASSES[cls] = type(f"{cls.__name__}WithDuckDBReflection", (cls,), methods)
    return _REFLECTING_CLASSES[cls]


def install_duckdb_reflection(target: Engine | Connection | Dialect) -> bool:
    """Give this engine's (or connection's) DuckDB dialect instance working reflection.

    Only the given dialect instance changes (its class becomes a subclass with the methods
    of `DuckDBReflectionDialect`); idempotent. Returns False, changing nothing, for a dialect
    other than duckdb-engine's, so callers need not check the backend first.
    """
    if isinstance(target, (Engine, Connection)):
        dialect: Any = target.dialect
    elif isinstance(target, Dialect):
        dialect = target
    else:
        raise TypeError(
            "install_duckdb_reflection expects an Engine, a Connection or a Dialect, "
            f"got {type(target).__name__}: {target!r}"
        )
    if not isinstance(dialect, DuckDBEngineDialect):
        return False
    dialect.__class__ = _reflecting_class(type(dialect))
    return True
