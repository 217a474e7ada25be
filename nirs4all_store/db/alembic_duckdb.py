"""Alembic support for DuckDB: an implementation class registered for the `duckdb` dialect.

Without it Alembic fails with ``KeyError: 'duckdb'`` (STACK_FACTS). DDL is transactional
on DuckDB, so a failing migration run rolls back entirely.
"""

from __future__ import annotations

from alembic.ddl.impl import DefaultImpl


class DuckDBImpl(DefaultImpl):
    """Alembic's view of DuckDB."""

    __dialect__ = "duckdb"
    transactional_ddl = True
