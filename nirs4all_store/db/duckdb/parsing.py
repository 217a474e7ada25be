"""Parsing the text DuckDB's catalogue functions report: type names and index key lists.

`duckdb_columns().data_type` spells each type in DuckDB's canonical form (``DOUBLE[]``,
``DECIMAL(10,2)``, ``ENUM('a', 'b')``) and `duckdb_indexes().expressions` writes an index's
key parts as a list literal; `nirs4all_store.db.duckdb.reflection` turns both into what
SQLAlchemy's reflection returns.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any

import sqlalchemy as sa
from duckdb_engine import datatypes as duck_types
from sqlalchemy import util as sa_util
from sqlalchemy.dialects import postgresql

__all__ = ["index_column_name", "parse_duckdb_type", "split_index_expressions"]

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


def index_column_name(part: str, columns: set[str]) -> str | None:
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
