"""Data access for pipeline templates (`PipelineLibrary`): one row per named template."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nirs4all_store.models import PipelineTemplate

T = PipelineTemplate.__table__
#: Every column but the config: what listing and metadata calls return.
METADATA_COLUMNS = tuple(c.name for c in T.columns if c.name != "config")


class TemplateRepository:
    """Templates by name (unique); rows are plain dicts."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def id_of(self, name: str) -> str | None:
        found = self.session.execute(sa.select(T.c.template_id).where(T.c.name == name)).scalar()
        return None if found is None else str(found)

    def insert(self, name: str, values: Mapping[str, Any]) -> str:
        template_id = str(uuid.uuid4())
        self.session.execute(
            sa.insert(T).values(
                template_id=template_id, name=name, created_at=values["updated_at"], **values
            )
        )
        return template_id

    def update(self, template_id: str, values: Mapping[str, Any]) -> None:
        self.session.execute(sa.update(T).where(T.c.template_id == template_id).values(**values))

    def delete(self, name: str) -> bool:
        """Delete by name; False when there was none. Existence is read first: DuckDB 1.x
        reports rowcount -1 for a DELETE through duckdb-engine (STACK_FACTS)."""
        if self.id_of(name) is None:
            return False
        self.session.execute(sa.delete(T).where(T.c.name == name))
        return True

    def get(self, name: str, columns: Iterable[str]) -> dict[str, Any] | None:
        """The named columns (and `category`) of a template, or None."""
        cols = [T.c[c] for c in dict.fromkeys([*columns, "category"])]
        row = self.session.execute(sa.select(*cols).where(T.c.name == name)).first()
        return None if row is None else dict(row._mapping)

    def list(self, category: str | None = None) -> list[dict[str, Any]]:
        """Metadata of every template (of `category`), by category and name."""
        query = sa.select(*[T.c[c] for c in METADATA_COLUMNS]).order_by(T.c.category, T.c.name)
        if category is not None:
            query = query.where(T.c.category == category)
        return [dict(r._mapping) for r in self.session.execute(query).all()]
