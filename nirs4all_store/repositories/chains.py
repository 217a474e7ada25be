"""Data access for chains (a fitted preprocessing-to-model path and its artifacts)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from nirs4all_store.models import Chain
from nirs4all_store.repositories.affected import rows_affected
from nirs4all_store.repositories.base import forget_known, insert_rows, note_known, rows_to_arrow
from nirs4all_store.types import utcnow
from nirs4all_store.validation import (
    FOLD_STRATEGIES,
    check_choice,
    check_id,
    check_int,
    check_json,
    check_text,
    new_id,
)

T = Chain.__table__


def _ids_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _ids_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _ids_in(item)


def artifact_refs(fold_artifacts: Any, shared_artifacts: Any) -> set[str]:
    """The distinct artifact ids a chain references through its fold and shared maps.

    A value may be one id or a (nested) list of ids; JSON text is decoded first (the legacy
    store and raw SQL hand it over undecoded). The one definition verify, save_chain,
    deletions and legacy adoption all count with.
    """
    refs: set[str] = set()
    for mapping in (fold_artifacts, shared_artifacts):
        if isinstance(mapping, str):
            mapping = json.loads(mapping)
        refs.update(_ids_in(mapping))
    return refs


def _check_artifact_map(field: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError(
            f"{field} must be a dict of id -> artifact id(s), got {type(value).__name__}"
        )
    for key, ids in value.items():
        items = ids if isinstance(ids, (list, tuple)) else [ids]
        for item in items:
            if not isinstance(item, str) or not item:
                raise TypeError(
                    f"{field}[{key!r}] must be an artifact id or a list of ids, got {ids!r}"
                )
    return {str(k): (list(v) if isinstance(v, (list, tuple)) else v) for k, v in value.items()}


class ChainRepository:
    """Chains and the artifact references they hold."""

    table = T

    def __init__(self, session: Session) -> None:
        self.session = session

    @staticmethod
    def validate(
        pipeline_id: str,
        steps: list[Any],
        model_step_idx: int,
        model_class: str,
        preprocessings: str | None = "",
        fold_strategy: str = "per_fold",
        fold_artifacts: dict[str, Any] | None = None,
        shared_artifacts: dict[str, Any] | None = None,
        branch_path: Any = None,
        source_index: int | None = None,
        model_name: str | None = None,
        metric: str | None = None,
        task_type: str | None = None,
        dataset_name: str | None = None,
        *,
        chain_id: str | None = None,
    ) -> tuple[dict[str, Any], set[str]]:
        """A clean chains row and the distinct artifact ids it references."""
        if not isinstance(steps, list):
            raise TypeError(f"steps must be a list, got {type(steps).__name__}")
        values = {
            "chain_id": check_id("chain_id", chain_id) if chain_id else new_id(),
            "pipeline_id": check_id("pipeline_id", pipeline_id),
            "steps": check_json("steps", steps),
            "model_step_idx": check_int("model_step_idx", model_step_idx, optional=False),
            "model_class": check_text("model_class", model_class),
            "preprocessings": check_text("preprocessings", preprocessings, optional=True),
            "fold_strategy": check_choice("fold_strategy", fold_strategy, FOLD_STRATEGIES),
            "fold_artifacts": _check_artifact_map("fold_artifacts", fold_artifacts),
            "shared_artifacts": _check_artifact_map("shared_artifacts", shared_artifacts),
            "branch_path": check_json("branch_path", branch_path),
            "source_index": check_int("source_index", source_index),
            "model_name": check_text("model_name", model_name, optional=True),
            "metric": check_text("metric", metric, optional=True),
            "task_type": check_text("task_type", task_type, optional=True),
            "dataset_name": check_text("dataset_name", dataset_name, optional=True),
            "created_at": utcnow(),
        }
        return values, artifact_refs(values["fold_artifacts"], values["shared_artifacts"])

    def insert_many(self, rows: list[dict[str, Any]]) -> None:
        """Insert validated rows (parents and artifact references are the caller's job)."""
        if rows:
            insert_rows(self.session, T, rows)
            note_known(self.session, "chains", (row["chain_id"] for row in rows))

    def exists(self, chain_id: str) -> bool:
        return (
            self.session.execute(sa.select(T.c.chain_id).where(T.c.chain_id == chain_id)).first()
            is not None
        )

    def get(self, chain_id: str) -> dict[str, Any] | None:
        check_id("chain_id", chain_id)
        row = self.session.execute(sa.select(T).where(T.c.chain_id == chain_id)).first()
        return dict(row._mapping) if row else None

    def for_pipeline(
        self, pipeline_id: str, *, limit: int | None = None, offset: int = 0
    ) -> pa.Table:
        query = (
            sa.select(T)
            .where(T.c.pipeline_id == pipeline_id)
            .order_by(T.c.created_at, T.c.chain_id)
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit)
        return rows_to_arrow(list(T.columns), self.session.execute(query).all())

    def ids_of_pipelines(self, pipeline_ids: sa.Select[Any]) -> sa.Select[Any]:
        return sa.select(T.c.chain_id).where(T.c.pipeline_id.in_(pipeline_ids))

    def reference_counts(self, chain_ids: sa.Select[Any] | None = None) -> Counter[str]:
        """How many of the selected chains (all chains when None) reference each artifact."""
        query = sa.select(T.c.fold_artifacts, T.c.shared_artifacts)
        if chain_ids is not None:
            query = query.where(T.c.chain_id.in_(chain_ids))
        counts: Counter[str] = Counter()
        for fold, shared in self.session.execute(query).all():
            counts.update(artifact_refs(fold, shared))
        return counts

    def all_references(self) -> Iterable[tuple[str, set[str]]]:
        query = sa.select(T.c.chain_id, T.c.fold_artifacts, T.c.shared_artifacts)
        for chain_id, fold, shared in self.session.execute(query).all():
            yield chain_id, artifact_refs(fold, shared)

    def delete_of_pipelines(self, pipeline_ids: sa.Select[Any]) -> int:
        forget_known(self.session)
        return rows_affected(self.session, sa.delete(T).where(T.c.pipeline_id.in_(pipeline_ids)))
