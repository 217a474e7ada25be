"""prediction_arrays on PostgreSQL: array columns stored EXTERNAL (out of line, uncompressed).

PostgreSQL's default for `DOUBLE PRECISION[]` is EXTENDED: every large value goes through
pglz before TOAST. Dense float64 predictions barely compress, so that work is wasted:
measured on one prediction with 2 x 1e7 doubles, the binary COPY took ~15 s with EXTENDED
and ~1.6 s with EXTERNAL (issue 15, item 11). EXTERNAL keeps the out-of-line TOAST storage
and drops the compression. It applies to values written from now on; rows already stored
keep their form and read back the same. DuckDB and SQLite have no such setting: a no-op.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The array columns of `prediction_arrays` (frozen here: a later model change must not
#: change what this revision did).
ARRAY_COLUMNS = ("y_true", "y_pred", "y_proba", "sample_indices", "weights")


def _set_storage(mode: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    clauses = ", ".join(f"ALTER COLUMN {c} SET STORAGE {mode}" for c in ARRAY_COLUMNS)
    op.execute(f"ALTER TABLE prediction_arrays {clauses}")


def upgrade() -> None:
    _set_storage("EXTERNAL")


def downgrade() -> None:
    _set_storage("EXTENDED")
