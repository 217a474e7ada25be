"""nirs4all 0.8.x's projects, cross-run artifact cache and dataset deletion calls.

A mixin of `Nirs4allWorkspaceStore`, over columns the schema has had since revision 0002
(`projects`, `runs.project_id`, the cache-key columns of `artifacts`). Where nirs4all's store
was silent about a bad id (an update of nothing) these raise a KeyError naming it; project
names are unique (the reference documents them so but did not check).
"""

from __future__ import annotations

from typing import Any

from nirs4all_store.integrations.nirs4all_sql import arrow_to_polars
from nirs4all_store.repositories import ArtifactRepository
from nirs4all_store.repositories.datasets import DatasetRepository
from nirs4all_store.repositories.projects import ArtifactCacheRepository, ProjectRepository

__all__ = ["DEFAULT_PROJECT_COLOR", "Nirs4allProjects"]

#: nirs4all's default project colour.
DEFAULT_PROJECT_COLOR = "#14b8a6"


class Nirs4allProjects:
    """Projects, the artifact cache keys and `delete_dataset_predictions`."""

    # -- projects ---------------------------------------------------------------------------
    def create_project(
        self, name: str, description: str = "", color: str = DEFAULT_PROJECT_COLOR
    ) -> str:
        """Create a project and return its id; ValueError when the name is taken."""
        with self.transaction() as session:  # type: ignore[attr-defined]
            return ProjectRepository(session).create(name, description, color)

    def list_projects(self) -> Any:
        """All projects, newest first, as a polars DataFrame."""
        table = self._read(  # type: ignore[attr-defined]
            "list_projects", lambda s: ProjectRepository(s).list()
        )
        return arrow_to_polars(table)

    def get_project(self, project_id: str) -> dict[str, Any] | None:
        """One project (project_id, name, description, color, created_at, updated_at)."""
        return self._read(  # type: ignore[attr-defined]
            "get_project", lambda s: ProjectRepository(s).get(project_id)
        )

    def get_project_by_name(self, name: str) -> dict[str, Any] | None:
        """The project with this name, None when there is none."""
        return self._read(  # type: ignore[attr-defined]
            "get_project_by_name", lambda s: ProjectRepository(s).get_by_name(name)
        )

    def update_project(
        self, project_id: str, name: str, description: str = "", color: str = DEFAULT_PROJECT_COLOR
    ) -> None:
        """Rename / describe / recolour a project (`updated_at` set); KeyError for an unknown
        id, ValueError when another project has the name."""
        with self.transaction() as session:  # type: ignore[attr-defined]
            ProjectRepository(session).update(project_id, name, description, color)

    def delete_project(self, project_id: str) -> bool:
        """Delete a project; its runs stay, outside any project. False if it did not exist."""
        with self.transaction() as session:  # type: ignore[attr-defined]
            return ProjectRepository(session).delete(project_id)

    def set_run_project(self, run_id: str, project_id: str | None) -> None:
        """Put a run in a project (None takes it out); KeyError naming an unknown id."""
        with self.transaction() as session:  # type: ignore[attr-defined]
            ProjectRepository(session).assign_run(run_id, project_id)

    def get_or_create_project(self, name: str) -> str:
        """The id of the project named `name`, created (default colour) if there is none;
        the lookup and the insert are one transaction."""
        with self.transaction() as session:  # type: ignore[attr-defined]
            projects = ProjectRepository(session)
            existing = projects.get_by_name(name)
            if existing is not None:
                return str(existing["project_id"])
            return projects.create(name, "", DEFAULT_PROJECT_COLOR)

    # -- cross-run artifact cache -----------------------------------------------------------
    def save_artifact_with_cache_key(
        self,
        obj: Any,
        operator_class: str,
        artifact_type: str,
        format: str,
        chain_path_hash: str,
        input_data_hash: str,
        dataset_hash: str,
    ) -> str:
        """`save_artifact` plus its cache key, in one transaction; returns the artifact id.

        Identical bytes share one artifact (the key is set on it). No reference is taken:
        reference counts stay the live chain references."""
        with self.transaction() as session:  # type: ignore[attr-defined]
            artifact_id = str(
                self.save_artifact(obj, operator_class, artifact_type, format)  # type: ignore[attr-defined]
            )
            # Inside a transaction the save is queued until the next read or write: write it
            # now, so the key's UPDATE finds the row (else "unknown artifact_id").
            self.flush()  # type: ignore[attr-defined]
            ArtifactCacheRepository(session).set_key(
                artifact_id, chain_path_hash, input_data_hash, dataset_hash
            )
        return artifact_id

    def update_artifact_cache_key(
        self, artifact_id: str, chain_path_hash: str, input_data_hash: str, dataset_hash: str
    ) -> None:
        """Attach a cache key to a stored artifact; KeyError for an unknown id."""
        with self.transaction() as session:  # type: ignore[attr-defined]
            ArtifactCacheRepository(session).set_key(
                artifact_id, chain_path_hash, input_data_hash, dataset_hash
            )

    def find_cached_artifact(self, chain_path_hash: str, input_data_hash: str) -> str | None:
        """The artifact stored under this cache key, None on a miss.

        A hit is an artifact a live chain references or one saved and not released since;
        it is marked in flight again, so `gc_artifacts` / `delete_run` spare it for their
        grace period while the caller puts it in a new chain."""
        with self.transaction() as session:  # type: ignore[attr-defined]
            found = ArtifactCacheRepository(session).find(chain_path_hash, input_data_hash)
            if found is not None:
                ArtifactRepository(session).mark_saved([found])
            return found

    def invalidate_dataset_cache(self, dataset_hash: str) -> int:
        """Clear the cache keys of every artifact of this dataset (rows and files stay);
        returns how many artifacts had a key."""
        with self.transaction() as session:  # type: ignore[attr-defined]
            return ArtifactCacheRepository(session).invalidate(dataset_hash)

    # -- datasets ---------------------------------------------------------------------------
    def delete_dataset_predictions(self, dataset_name: str) -> int:
        """Delete every prediction of a dataset and its arrays, in one transaction; returns
        the predictions deleted. Chains (the fitted models) and pipelines stay, so
        `predict(chain_id=...)` still works; `delete_run` removes those."""
        with self.transaction() as session:  # type: ignore[attr-defined]
            return DatasetRepository(session).delete_predictions(dataset_name)
