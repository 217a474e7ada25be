"""Schema reflection for DuckDB, read from DuckDB's own catalogue functions.

duckdb-engine inherits PostgreSQL's reflection, which queries pg_catalog tables DuckDB lacks
(`pg_collation`, `REGCLASS`, `pg_inherits`); its `get_indexes` returns [] and check
constraints raise NotImplementedError (STACK_FACTS). Alembic's autogenerate and
`batch_alter_table` need all of it, so this module answers the same questions from
`duckdb_tables()`, `duckdb_views()`, `duckdb_columns()`, `duckdb_constraints()` and
`duckdb_indexes()`.

How it is hooked in: `install_duckdb_reflection(engine_or_connection)` switches *that one
dialect instance* (an engine's dialect, shared by its connections) to a subclass of its own
class carrying the methods of `DuckDBReflectionDialect`. Nothing global changes, so other users of
duckdb-engine in the same process keep their behaviour, and importing the package does not
patch anything. `nirs4all_store.db.alembic_duckdb.DuckDBImpl` calls it whenever Alembic
opens a migration context on DuckDB, which is the only place the store needs reflection
(the runtime only uses `has_table`, which duckdb-engine answers correctly and is unchanged).
`DuckDBReflectionDialect` is the same thing as a plain dialect class, for code that builds
its own dialect.

Limits (DuckDB's, not this module's): DuckDB does not keep user-given constraint names
(a UNIQUE named `uq_x` is reported as `<table>_<columns>_key`), keeps no ON DELETE rules and
ignores VARCHAR lengths, so none of these can be reflected.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import sqlalchemy as sa
from duckdb_engine import Dialect as DuckDBEngineDialect
from duckdb_engine import datatypes as duck_types
from sqlalchemy import util as sa_util
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.engine.reflection import ObjectKind, ObjectScope, cache

__all__ = [
    "DuckDBReflectionDialect",
    "install_duckdb_reflection",
    "parse_duckdb_type",
    "split_index_expressions",
]

TableKey = tuple[str | None, str]

# DuckDB's canonical type names (as `duckdb_columns().data_type` spells them) -> SQLAlchemy.
_SIMPLE_TYPES: dict[str, Callable[[], sa.types.TypeEngine[Any]]] = {
    "BOOLEAN": sa.BOOLEAN,
    "TINYINT": duck_types.TinyInteger,
    "SMALLINT": sa.SMALLINT,
    "INTEGER": sa.INTEGER,
    "BIGINT": sa.BIGINT,
    "HUGEINT": duck_types.HugeInteger,
    "UTINYINT": duck_types.UTinyInteger,
    "USMALLINT": duck_types.USmallInteger,
    "UINTEGER": duck_types.UInteger,
    "UBIGINT": duck_types.UBigInteger,
    "UHUGEINT": duck_types.UHugeInteger,
    "FLOAT": sa.REAL,
    "DOUBLE": sa.DOUBLE_PRECISION,
    "VARCHAR": sa.VARCHAR,
    "BLOB": sa.BLOB,
    "DATE": sa.DATE,
    "TIME": sa.TIME,
    "TIME WITH TIME ZONE": partial(sa.TIME, timezone=True),
    "TIMESTAMP": sa.TIMESTAMP,
    "TIMESTAMP_S": sa.TIMESTAMP,
    "TIMESTAMP_MS": sa.TIMESTAMP,
    "TIMESTAMP_NS": sa.TIMESTAMP,
    "TIMESTAMP WITH TIME ZONE": partial(sa.TIMESTAMP, timezone=True),
    "INTERVAL": postgresql.INTERVAL,
    "UUID": sa.UUID,
    "JSON": sa.JSON,
    "BIT": postgresql.BIT,
}

_ARRAY_SUFFIX = re.compile(r"^(?P<inner>.+)\[(?P<size>\d*)\]$")
_TYPE_WITH_ARGS = re.compile(
    r"^(?P<name>[A-Z_][A-Z0-9_ ]*?)\s*\((?P<args>.*)\)$", re.DOTALL | re.IGNORECASE
)
_QUOTED_LITERAL = re.compile(r"'((?:[^']|'')*)'")
_PLAIN_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def parse_duckdb_type(data_type: str) -> sa.types.TypeEngine[Any]:
    """The SQLAlchemy type for a DuckDB type name as `duckdb_columns()` reports it.

    Lists and fixed arrays (``DOUBLE[]``, ``DOUBLE[][]``, ``DOUBLE[3]``) become
    ``postgresql.ARRAY`` with their dimension count; nested types DuckDB has and SQLAlchemy
    cannot express (STRUCT, MAP, UNION, ...) become NullType with a warning, which Alembic
    skips when comparing types.
    """
    if not isinstance(data_type, str) or not data_type.strip():
        raise ValueError(f"expected a DuckDB type name, got {data_type!r}")
    text = data_type.strip()
    dimensions = 0
    while (match := _ARRAY_SUFFIX.match(text)) is not None and not text.upper().startswith(
        ("STRUCT(", "MAP(", "UNION(")
    ):
        dimensions += 1
        text = match.group("inner").strip()
    if dimensions:
        item = parse_duckdb_type(text)
        if isinstance(item, sa.types.NullType):
            return item
        return postgresql.ARRAY(item, dimensions=dimensions)

    upper = text.upper()
    simple = _SIMPLE_TYPES.get(upper)
    if simple is not None:
        return simple()
    with_args = _TYPE_WITH_ARGS.match(text)
    if with_args is not None:
        name = with_args.group("name").strip().upper()
        args = with_args.group("args")
        if name in ("DECIMAL", "NUMERIC"):
            precision, _, scale = args.partition(",")
            return sa.Numeric(int(precision), int(scale or 0))
        if name == "ENUM":
            values = [value.replace("''", "'") for value in _QUOTED_LITERAL.findall(args)]
            return sa.Enum(*values, native_enum=False, create_constraint=False)
        if name in ("VARCHAR", "BIT"):
            return _SIMPLE_TYPES[name]()
    sa_util.warn(f"DuckDB reflection: type {data_type!r} has no SQLAlchemy equivalent")
    return sa.types.NullType()


def split_index_expressions(expressions: str | None) -> list[str]:
    """The key parts of an index from `duckdb_indexes().expressions`.

    DuckDB writes them as a list literal: ``[a, '"partition"', '((d + 1))']``: plain
    columns bare, quoted identifiers and expressions inside single quotes.
    """
    if not expressions:
        return []
    text = expressions.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    parts: list[str] = []
    depth = 0
    in_single = in_double = False
    current: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "'" and not in_double:
            if in_single and i + 1 < len(text) and text[i + 1] == "'":
                current.append("''")
                i += 2
                continue
            in_single = not in_single
        elif char == '"' and not in_single:
            in_double = not in_double
        elif not in_single and not in_double:
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
            elif char == "," and depth == 0:
                parts.append("".join(current).strip())
                current = []
                i += 1
                continue
        current.append(char)
        i += 1
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return [_unwrap_index_part(part) for part in parts]


def _unwrap_index_part(part: str) -> str:
    if len(part) >= 2 and part[0] == part[-1] == "'":
        part = part[1:-1].replace("''", "'")
    return part


def _index_column_name(part: str, columns: set[str]) -> str | None:
    """The column an index key part names, or None when it is an expression."""
    if len(part) >= 2 and part[0] == part[-1] == '"':
        name = part[1:-1].replace('""', '"')
        return name if name in columns else None
    if _PLAIN_IDENTIFIER.match(part):
        if part in columns:
            return part
        lowered = {c.lower(): c for c in columns}
        return lowered.get(part.lower())
    return None


@dataclass(frozen=True)
class _Relation:
    name: str
    oid: int
    kind: ObjectKind
    temporary: bool
    comment: str | None


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
        database: str | None = None
        if schema is not None:
            preparer: Any = self.identifier_preparer  # type: ignore[attr-defined]
            database, schema = preparer._separate(schema)
        if database is None or schema is None:
            current_db, current_schema = connection.execute(
                sa.text("SELECT current_database(), current_schema()")
            ).one()
            database = database or current_db
            schema = schema or current_schema
        return str(database), str(schema)

    def _duck_relations(
        self,
        connection: Connection,
        schema: str | None,
        filter_names: Iterable[str] | None,
        scope: ObjectScope,
        kind: ObjectKind,
    ) -> list[_Relation]:
        database, schema_name = self._duck_scope(connection, schema)
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
        relations: list[_Relation] = []
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
            relations.append(_Relation(name, int(oid), object_kind, bool(temporary), comment))
        return relations

    def _duck_constraints(
        self, connection: Connection, relations: Sequence[_Relation], constraint_type: str
    ) -> dict[int, list[Any]]:
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
        rows = connection.execute(
            sa.text(
                "SELECT table_oid, column_name, data_type, is_nullable, column_default, "
                "comment, is_generated, generation_expression FROM duckdb_columns() "
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
        found = self._duck_constraints(connection, relations, "PRIMARY KEY")
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
        found = self._duck_constraints(connection, relations, "FOREIGN KEY")
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
        found = self._duck_constraints(connection, relations, "UNIQUE")
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
        found = self._duck_constraints(connection, relations, "CHECK")
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
            names = [_index_column_name(part, table_columns[oid]) for part in parts]
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
