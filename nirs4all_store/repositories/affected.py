"""How many rows an UPDATE or DELETE touched, on every supported driver.

duckdb 1.4.4 and 1.5.6 report `cursor.rowcount == -1` for UPDATE and DELETE through
duckdb-engine (duckdb 2.0.x reports the real count; STACK_FACTS, measured 2026-12), so code
that reads `result.rowcount` silently sees "nothing changed" there. On such a driver an
UPDATE is run with `RETURNING <primary key>` (works on 1.4.4) and its rows counted; a DELETE
(`DELETE ... RETURNING` returned no rows through duckdb-engine on 1.4.4) is counted with the
same WHERE clause first, in the same transaction, then run. Every other driver keeps the
plain statement and its rowcount (no extra round trip).
"""

from __future__ import annotations

import functools
import importlib.metadata
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

__all__ = ["rows_affected"]


def rows_affected(session: Session, statement: sa.Update | sa.Delete) -> int:
    """Execute `statement` in `session` and return how many rows it updated or deleted."""
    if not _rowcount_unreliable(session):
        return max(session.execute(statement).rowcount or 0, 0)
    table: Any = statement.table
    if isinstance(statement, sa.Update):
        key = list(table.primary_key.columns) or list(table.columns)[:1]
        return len(session.execute(statement.returning(*key)).all())
    count = sa.select(sa.func.count()).select_from(table)
    if statement.whereclause is not None:
        count = count.where(statement.whereclause)
    before = int(session.execute(count).scalar_one())
    session.execute(statement)
    return before


def _rowcount_unreliable(session: Session) -> bool:
    """True on DuckDB below 2.0 (the versions whose rowcount is -1)."""
    bind = session.get_bind()
    if bind.dialect.name != "duckdb":
        return False
    return _duckdb_major() < 2


@functools.cache
def _duckdb_major() -> int:
    return int(importlib.metadata.version("duckdb").split(".")[0])
