"""Projects (groups of runs, `runs.project_id`) and the cross-run artifact cache keys.

Both use columns the schema has had since revision 0002 (the `projects` table, the
`chain_path_hash` / `input_data_hash` / `dataset_hash` columns of `artifacts`), so no
migration is needed. Project names are unique: checked in the writing transaction (the
table has no UNIQUE constraint, and DuckDB cannot add one to an existing table).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from nirs4all_store.models import Artifact, Project, Run
from nirs4all_store.repositories.affected import rows_affected
from nirs4all_store.repositories.base import insert_rows, rows_to_arrow
from nirs4all_store.types import utcnow
from nirs4all_store.validation import check_id, check_text, new_id

__all__ = ["ArtifactCacheRepository", "ProjectRepository"]

T = Project.__table__
R = Run.__table__
A = Artifact.__table__


class ProjectRepository:
    """Project rows and the runs' `project_id`."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def create(self, name: str, description: str | None, color: str | None) -> str:
        """A new project; ValueError when the name is taken."""
        check_text("name", name)
        if self.get_by_name(name) is not None:
            raise ValueError(f"a project named {name!r} exists already")
        project_id = new_id()
        now = utcnow()
        row = {"project_id": project_id, "name": name, "description": description,
               "color": color, "created_at": now, "updated_at": now}  # fmt: skip
        insert_rows(self.session, T, [row])
        return project_id

    def list(self) -> pa.Table:
        """Newest first (ties by id)."""
        query = sa.select(*T.columns).order_by(T.c.created_at.desc(), T.c.project_id.desc())
        return rows_to_arrow(list(T.columns), self.session.execute(query).all())

    def get(self, project_id: str) -> dict[str, Any] | None:
        check_id("project_id", project_id)
        row = self.session.execute(sa.select(T).where(T.c.project_id == project_id)).first()
        return dict(row._mapping) if row else None

    def get_by_name(self, name: str) -> dict[str, Any] | None:
        query = sa.select(T).where(T.c.name == name).order_by(T.c.created_at, T.c.project_id)
        row = self.session.execute(query.limit(1)).first()
        return dict(row._mapping) if row else None

    def update(
        self, project_id: str, name: str, description: str | None, color: str | None
    ) -> None:
        """KeyError for an unknown id; ValueError when another project has the name."""
        check_text("name", name)
        other = self.get_by_name(name)
        if other is not None and other["project_id"] != project_id:
            raise ValueError(f"a project named {name!r} exists already")
        statement = (
            sa.update(T)
            .where(T.c.project_id == project_id)
            .values(name=name, description=description, color=color, updated_at=utcnow())
        )
        if not rows_affected(self.session, statement):
            raise KeyError(f"unknown project_id {project_id!r}")

    def delete(self, project_id: str) -> bool:
        """Delete a project; its runs stay, with `project_id` NULL. False if it did not exist."""
        self.session.execute(
            sa.update(R).where(R.c.project_id == project_id).values(project_id=None)
        )
        return rows_affected(self.session, sa.delete(T).where(T.c.project_id == project_id)) > 0

    def assign_run(self, run_id: str, project_id: str | None) -> None:
        """Put a run in a project (None: in none); KeyError naming an unknown id."""
        if project_id is not None and self.get(project_id) is None:
            raise KeyError(f"unknown project_id {project_id!r}")
        statement = sa.update(R).where(R.c.run_id == run_id).values(project_id=project_id)
        if not rows_affected(self.session, statement):
            raise KeyError(f"unknown run_id {run_id!r}")


class ArtifactCacheRepository:
    """`(chain_path_hash, input_data_hash)` keys of artifacts, and their `dataset_hash`."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def set_key(
        self, artifact_id: str, chain_path_hash: str, input_data_hash: str, dataset_hash: str
    ) -> None:
        statement = (
            sa.update(A)
            .where(A.c.artifact_id == artifact_id)
            .values(
                chain_path_hash=chain_path_hash,
                input_data_hash=input_data_hash,
                dataset_hash=dataset_hash,
            )
        )
        if not rows_affected(self.session, statement):
            raise KeyError(f"unknown artifact_id {artifact_id!r}")

    def find(self, chain_path_hash: str, input_data_hash: str) -> str | None:
        """The oldest artifact under the key that is still kept: referenced by a live chain,
        or saved and not released since (`referenced_at` NULL: in flight, gc spares it)."""
        query = (
            sa.select(A.c.artifact_id)
            .where(
                A.c.chain_path_hash == chain_path_hash,
                A.c.input_data_hash == input_data_hash,
                sa.or_(A.c.ref_count > 0, A.c.referenced_at.is_(None)),
            )
            .order_by(A.c.created_at, A.c.artifact_id)
            .limit(1)
        )
        found = self.session.execute(query).scalar_one_or_none()
        return None if found is None else str(found)

    def invalidate(self, dataset_hash: str) -> int:
        """Clear the cache keys of the dataset's artifacts; returns how many had one."""
        statement = (
            sa.update(A)
            .where(A.c.dataset_hash == dataset_hash, A.c.chain_path_hash.is_not(None))
            .values(chain_path_hash=None, input_data_hash=None)
        )
        return rows_affected(self.session, statement)
