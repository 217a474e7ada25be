"""Alembic support for DuckDB: an implementation class registered for the `duckdb` dialect.

Without it Alembic fails with ``KeyError: 'duckdb'`` (STACK_FACTS). DDL is transactional
on DuckDB, so a failing migration run rolls back entirely.

Autogenerate (`compare_metadata`, `alembic revision --autogenerate`) also needs:
- reflection that works on DuckDB: `DuckDBImpl.__init__` installs
  `reflection.install_duckdb_reflection` on the dialect instance Alembic runs on
  (that engine only; this module is imported only where Alembic runs, by migrations/env.py);
- type synonyms, because DuckDB stores TEXT as VARCHAR, BYTEA as BLOB, REAL as FLOAT,
  DOUBLE PRECISION as DOUBLE: the metadata and the database name the same type
  differently, and only a difference DuckDB itself would see is reported;
- server defaults compared after normalisation (DuckDB reports ``CAST('x' AS VARCHAR)``,
  ``CURRENT_TIMESTAMP`` for ``now()``, extra parentheses, ...);
- unique constraints matched by their columns: DuckDB drops user-given constraint names
  and reports ``<table>_<columns>_key`` instead.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from alembic.ddl.impl import DefaultImpl
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql.schema import DefaultClause

from nirs4all_store.db.duckdb.reflection import install_duckdb_reflection

__all__ = ["DuckDBImpl", "normalize_server_default"]

# Spellings DuckDB treats as one type. Alembic compares the first word of each compiled
# type (``double`` of ``DOUBLE PRECISION``) or the whole type name against these sets.
DUCKDB_TYPE_SYNONYMS: tuple[set[str], ...] = (
    {"NUMERIC", "DECIMAL"},
    {"VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR", "CHARACTER VARYING", "CHARACTER"},
    {"FLOAT", "REAL", "FLOAT4"},
    {"DOUBLE", "DOUBLE PRECISION", "FLOAT8"},
    {"BYTEA", "BLOB", "VARBINARY", "BINARY"},
    {"INTEGER", "INT", "INT4", "SIGNED"},
    {"BIGINT", "INT8", "LONG"},
    {"SMALLINT", "INT2", "SHORT"},
    {"BOOLEAN", "BOOL", "LOGICAL"},
    {"TIMESTAMP", "DATETIME"},
)

# Expressions DuckDB may report for the same default.
_DEFAULT_SYNONYMS = {
    "now()": "current_timestamp",
    "current_timestamp()": "current_timestamp",
    "get_current_timestamp()": "current_timestamp",
    "transaction_timestamp()": "current_timestamp",
    "localtimestamp": "current_timestamp",
    "current_date()": "current_date",
    "today()": "current_date",
}

_CAST_CALL = re.compile(
    r"^cast\s*\((?P<inner>.*)\s+as\s+[\w\s\[\]]+(\([\d\s,]*\))?\)$", re.I | re.S
)
_PG_CAST = re.compile(r"^(?P<inner>.*?)::[\w\s\[\]]+(\([\d\s,]*\))?$", re.S)


def _balanced(text: str) -> bool:
    """True when the parentheses of `text` (outside string literals) balance."""
    depth = 0
    in_quote = False
    for char in text:
        if char == "'":
            in_quote = not in_quote
        elif not in_quote:
            depth += char == "("
            depth -= char == ")"
            if depth < 0:
                return False
    return depth == 0 and not in_quote


def _strip_outer_parens(text: str) -> str | None:
    if text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        return text[1:-1].strip()
    return None


def _lower_outside_quotes(text: str) -> str:
    parts = re.split(r"('(?:[^']|'')*')", text)
    return "".join(
        part if part.startswith("'") else re.sub(r"\s+", " ", part.lower()) for part in parts
    )


def normalize_server_default(text: str | None) -> str | None:
    """A canonical spelling of a server default, so equal defaults compare equal.

    Drops outer parentheses and casts (``CAST('x' AS VARCHAR)``, ``'x'::text``), lowercases
    everything outside string literals, writes numbers canonically (``1.50`` -> ``1.5``) and
    maps DuckDB's synonyms of the current time (``now()`` -> ``current_timestamp``).
    """
    if text is None:
        return None
    current = text.strip()
    while True:
        unwrapped = _strip_outer_parens(current)
        if unwrapped is None:
            match = _CAST_CALL.match(current) or _PG_CAST.match(current)
            if match is not None and _balanced(match.group("inner")):
                unwrapped = match.group("inner").strip()
        if unwrapped is None or unwrapped == current:
            break
        current = unwrapped
    current = _lower_outside_quotes(current)
    try:
        number = Decimal(current)
    except (InvalidOperation, ValueError):
        return _DEFAULT_SYNONYMS.get(current, current)
    if number.is_finite():
        normalised = number.normalize()
        return "0" if normalised.is_zero() else format(normalised, "f")
    return current


def _metadata_default_text(column: sa.Column[Any], rendered: str | None) -> str | None:
    """The metadata default as SQL: a plain-string server_default is a string literal."""
    default = column.server_default
    if isinstance(default, DefaultClause) and isinstance(default.arg, str):
        return "'" + default.arg.replace("'", "''") + "'"
    return rendered


def _resolved_type(type_: sa.types.TypeEngine[Any], dialect: Dialect) -> Any:
    """The type a dialect really uses (TypeDecorators and variants unwrapped)."""
    return type_._unwrapped_dialect_impl(dialect)


class DuckDBImpl(DefaultImpl):
    """Alembic's view of DuckDB."""

    __dialect__ = "duckdb"
    transactional_ddl = True
    type_synonyms = DUCKDB_TYPE_SYNONYMS

    def __init__(self, dialect: Dialect, *args: Any, **kwargs: Any) -> None:
        super().__init__(dialect, *args, **kwargs)
        # Autogenerate and batch operations reflect the schema: give this engine's dialect
        # reflection that works on DuckDB (see duckdb_reflection for why it is per engine).
        install_duckdb_reflection(dialect)

    def compare_type(self, inspector_column: sa.Column[Any], metadata_column: sa.Column) -> bool:
        """True when the types differ as DuckDB sees them; arrays by item type and depth."""
        conn_type = _resolved_type(inspector_column.type, self.dialect)
        meta_type = _resolved_type(metadata_column.type, self.dialect)
        conn_array = isinstance(conn_type, sa.ARRAY)
        meta_array = isinstance(meta_type, sa.ARRAY)
        if conn_array or meta_array:
            if not (conn_array and meta_array):
                return True
            if (conn_type.dimensions or 1) != (meta_type.dimensions or 1):
                return True
            return self.compare_type(
                sa.Column(inspector_column.name, conn_type.item_type),
                sa.Column(metadata_column.name, meta_type.item_type),
            )
        return bool(super().compare_type(inspector_column, metadata_column))

    def compare_server_default(
        self,
        inspector_column: sa.Column[Any],
        metadata_column: sa.Column[Any],
        rendered_metadata_default: str | None,
        rendered_inspector_default: str | None,
    ) -> bool:
        """True when the defaults differ once both are normalised."""
        metadata_text = _metadata_default_text(metadata_column, rendered_metadata_default)
        return normalize_server_default(rendered_inspector_default) != normalize_server_default(
            metadata_text
        )

    def correct_for_autogen_constraints(
        self,
        conn_uniques: set[sa.UniqueConstraint],
        conn_indexes: set[sa.Index],
        metadata_unique_constraints: set[sa.UniqueConstraint],
        metadata_indexes: set[sa.Index],
    ) -> None:
        """Give reflected UNIQUE constraints the metadata name of the one with their columns.

        DuckDB forgets constraint names, so without this every named unique constraint
        would show as removed and added again. A metadata constraint whose column list no
        reflected one has is still reported as added (and the reflected one as removed).
        """
        conn_names = {uq.name for uq in conn_uniques}
        by_columns: dict[tuple[str, ...], str] = {}
        for uq in metadata_unique_constraints:
            if isinstance(uq.name, str) and uq.name not in conn_names:
                by_columns.setdefault(tuple(col.name for col in uq.columns), uq.name)
        for uq in conn_uniques:
            key = tuple(col.name for col in uq.columns)
            if key in by_columns and uq.name not in {m.name for m in metadata_unique_constraints}:
                uq.name = by_columns.pop(key)
