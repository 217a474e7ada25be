"""`Nirs4allWorkspaceStore`: this library's WorkspaceStore speaking nirs4all 0.8.x's contract.

What nirs4all 0.8.x does with its store was traced call by call (docs/nirs4all.md); this
subclass bridges exactly the places where the two contracts differ, through the public API:

- the constructor takes the workspace folder only (`WorkspaceStore(workspace_path)`); the
  database URL and options come from `use_nirs4all_store()`;
- `workspace_path`, `degraded` (always False: no silent degraded mode), `array_store`;
- nirs4all writes its artifact files itself, names them in `save_chain` and registers them
  afterwards (`register_existing_artifact`): a chain naming ids not registered yet is held
  until they are, so reference counts stay live chain references, exact in any order;
- prediction ids of any spelling (`stored_prediction_id`), `chain_id=""` meaning none, and a
  re-saved natural key updating the prediction in place and returning its existing id;
- JSON that nirs4all cannot always encode (a live splitter object in the refit
  `expanded_config`) stored as `json.dumps(..., default=str)` would, as the reference does;
- polars frames where nirs4all expects them, and `_fetch_pl(sql, params)` for its raw SQL.

The leaderboard calls (chain summaries, aggregated predictions) are the mixin
`nirs4all_summaries.Nirs4allSummaries`; projects, the cross-run artifact cache and
`delete_dataset_predictions` are `nirs4all_projects.Nirs4allProjects`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa

from nirs4all_store import WorkspaceStore
from nirs4all_store.integrations.nirs4all_arrays import Nirs4allArrayStore, stored_prediction_id
from nirs4all_store.integrations.nirs4all_projects import Nirs4allProjects
from nirs4all_store.integrations.nirs4all_reads import CHAIN_JSON, Nirs4allReads
from nirs4all_store.integrations.nirs4all_sql import arrow_to_polars, rewrite_sql, rows_to_polars
from nirs4all_store.integrations.nirs4all_summaries import Nirs4allSummaries
from nirs4all_store.repositories import ArtifactRepository, PredictionRepository
from nirs4all_store.repositories.chain_summaries import ChainSummaryRepository
from nirs4all_store.repositories.chains import artifact_refs
from nirs4all_store.repositories.predictions import natural_key
from nirs4all_store.validation import new_id

__all__ = ["Nirs4allWorkspaceStore"]

log = logging.getLogger(__name__)

_PREDICTION_JSON = ("scores", "best_params")


def _json_safe(value: Any) -> Any:
    """`value` as `json.dumps(value, default=str)` would store it (nirs4all's refit config
    holds a live `_FullTrainFoldSplitter`; the reference store writes its `str()`)."""
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str))


class Nirs4allWorkspaceStore(Nirs4allSummaries, Nirs4allProjects, Nirs4allReads, WorkspaceStore):
    """A `WorkspaceStore` that nirs4all 0.8.x can use in place of its own.

    `Nirs4allWorkspaceStore(workspace_path)` opens the workspace as nirs4all does; the class
    attributes `default_url` and `default_options` (set by `use_nirs4all_store`) choose the
    database (DuckDB `store.duckdb` in the folder when None) and the store's options.
    """

    default_url: ClassVar[str | None] = None
    default_options: ClassVar[Mapping[str, Any]] = {}

    def __init__(
        self, workspace_path: str | os.PathLike[str], *, url: str | None = None, **options: Any
    ) -> None:
        super().__init__(
            workspace_path,
            url=url if url is not None else self.default_url,
            **{**self.default_options, **options},
        )
        self._pending_chains: list[dict[str, Any]] = []
        self._array_store = Nirs4allArrayStore(self)

    # -- what nirs4all reads off the store ---------------------------------------------
    @property
    def workspace_path(self) -> Path:
        """The workspace folder (nirs4all writes its artifact and output files there)."""
        assert self.path is not None
        return self.path

    @property
    def degraded(self) -> bool:
        """Always False: this store fails loudly instead of running degraded."""
        return False

    @property
    def array_store(self) -> Nirs4allArrayStore:
        """Prediction arrays, as nirs4all's `ArrayStore` is called."""
        return self._array_store

    # -- runs and pipelines ---------------------------------------------------------------
    def begin_pipeline(  # type: ignore[override]
        self,
        run_id: str,
        name: str,
        expanded_config: Any = None,
        generator_choices: Any = None,
        dataset_name: str = "",
        dataset_hash: str | None = None,
        **kwargs: Any,
    ) -> str:
        """Start a pipeline; non-JSON values of its config are stored as their `str()`."""
        return super().begin_pipeline(
            run_id,
            name,
            _json_safe(expanded_config),
            _json_safe(generator_choices),
            dataset_name,
            dataset_hash,
            **kwargs,
        )

    def log_step(  # type: ignore[override]
        self,
        pipeline_id: str,
        step_idx: int,
        operator_class: str | None,
        event: str,
        duration_ms: float | None = None,
        message: str | None = None,
        details: Any = None,
        level: str = "info",
    ) -> str:
        """One log entry; a missing duration is stored as NULL."""
        return super().log_step(
            pipeline_id,
            step_idx,
            operator_class,
            event,
            duration_ms,
            message,
            _json_safe(details),
            level,
        )

    # -- artifacts and chains -------------------------------------------------------------
    def register_existing_artifact(
        self,
        artifact_id: str,
        path: str,
        content_hash: str,
        operator_class: str | None,
        artifact_type: str | None,
        format: str,
        size_bytes: int,
    ) -> str:
        """Record a file nirs4all already wrote under `artifacts/` (idempotent on an id).

        `content_hash` may carry nirs4all's `sha256:` prefix; `path` is relative to the
        artifacts folder (an absolute path inside it is accepted)."""
        relpath = self._artifact_relpath(path)
        digest = (
            content_hash.split(":", 1)[1] if content_hash.startswith("sha256:") else content_hash
        )
        with self.transaction() as session:
            artifacts = ArtifactRepository(session)
            if artifacts.get(artifact_id) is None:
                artifacts.insert_many(
                    [
                        {
                            "artifact_id": artifact_id,
                            "artifact_path": relpath,
                            "content_hash": digest,
                            "operator_class": operator_class,
                            "artifact_type": artifact_type,
                            "format": format,
                            "size_bytes": int(size_bytes),
                        }
                    ]
                )
        self._save_ready_chains()
        return artifact_id

    def _artifact_relpath(self, path: str) -> str:
        candidate = Path(path)
        if candidate.is_absolute():
            try:
                candidate = candidate.resolve().relative_to(self.artifacts_path)
            except ValueError:
                raise ValueError(
                    f"artifact path {path!r} is outside the artifacts folder {self.artifacts_path}"
                ) from None
        return candidate.as_posix()

    def save_chain(  # type: ignore[override]
        self,
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
        dataset_name: str | None = None,
        **kwargs: Any,
    ) -> str:
        """Record a chain; one naming artifacts not registered yet is saved when they are."""
        record = {k: v for k, v in locals().items() if k not in ("self", "kwargs")}
        record.update(kwargs)
        record["steps"] = _json_safe(steps)
        record["chain_id"] = record.get("chain_id") or new_id()
        self._pending_chains.append(record)
        self._save_ready_chains()
        return str(record["chain_id"])

    def _save_ready_chains(self) -> None:
        """Save the held chains whose artifacts are all registered now (one transaction)."""
        if not self._pending_chains:
            return
        with self.transaction() as session:
            artifacts = ArtifactRepository(session)
            ready = [
                c
                for c in self._pending_chains
                if not artifacts.missing(
                    artifact_refs(c.get("fold_artifacts"), c.get("shared_artifacts"))
                )
            ]
            if ready:
                self.save_chains(ready)
        self._pending_chains = [c for c in self._pending_chains if c not in ready]

    def pending_chains(self) -> list[dict[str, Any]]:
        """Chains held until the artifacts they name are registered (normally none)."""
        return list(self._pending_chains)

    def get_chain(self, chain_id: str) -> dict[str, Any] | None:
        """A chain (maps decoded; best_params and score maps as JSON text, as nirs4all's)."""
        self._save_ready_chains()
        chain = super().get_chain(chain_id)
        if chain is not None:
            for name in ("best_params", "cv_scores", "final_scores"):
                if chain.get(name) is not None and not isinstance(chain[name], str):
                    chain[name] = json.dumps(chain[name])
        return chain

    def get_chains_for_pipeline(self, pipeline_id: str) -> Any:  # type: ignore[override]
        """A pipeline's chains as a polars DataFrame (JSON columns as text)."""
        self._save_ready_chains()
        return arrow_to_polars(super().get_chains_for_pipeline(pipeline_id), CHAIN_JSON)

    def bulk_update_chain_summaries(self, chain_ids: Iterable[str]) -> None:
        """Recompute the cv_* / final_* summary columns of these chains (set-based SQL)."""
        self._save_ready_chains()
        with self.transaction() as session:
            ChainSummaryRepository(session).refresh(chain_ids)

    def update_chain_summary(self, chain_id: str) -> None:
        """Recompute one chain's summary columns from its predictions."""
        self.bulk_update_chain_summaries([chain_id])

    def cleanup_transient_artifacts(
        self, run_id: str, dataset_name: str, winning_pipeline_ids: list[str]
    ) -> int:
        """Returns 0: reference counts are live chain references, so the artifacts of the
        cross-validation folds stay while their chains exist (delete the run to free them)."""
        return 0

    def close(self) -> None:
        """Release the database; chains still waiting for their artifacts are reported."""
        if self._pending_chains:
            log.warning(
                "closing with %d chain(s) whose artifacts were never registered: %s",
                len(self._pending_chains),
                sorted(c["chain_id"] for c in self._pending_chains),
            )
            self._pending_chains = []
        super().close()

    # -- predictions ------------------------------------------------------------------------
    def save_prediction(
        self,
        pipeline_id: str,
        chain_id: str | None,
        dataset_name: str,  # type: ignore[override]
        model_name: str,
        model_class: str,
        fold_id: str,
        partition: str,
        **fields: Any,
    ) -> str:
        """Record a prediction (an upsert on its natural key); returns its stored id."""
        record = {
            "pipeline_id": pipeline_id,
            "chain_id": chain_id or None,
            "dataset_name": dataset_name,
            "model_name": model_name,
            "model_class": model_class,
            "fold_id": str(fold_id),
            "partition": partition,
            **fields,
        }
        if record.get("task_type") is not None:
            record["task_type"] = str(getattr(record["task_type"], "value", record["task_type"]))
        for name in _PREDICTION_JSON:
            record[name] = _json_safe(record.get(name))
        if record.get("prediction_id"):
            record["prediction_id"] = stored_prediction_id(record["prediction_id"])
        key = natural_key(
            pipeline_id,
            record["chain_id"],
            record["fold_id"],
            partition,
            model_name,
            record.get("branch_id"),
        )
        with self.transaction() as session:
            repo = PredictionRepository(session)
            existing = repo.id_for_natural_key(key)
            if existing is not None:  # the reference's upsert: same id, arrays replaced
                record["prediction_id"] = existing
                repo.delete([existing])
            return self.save_predictions([record])[0]

    def get_prediction(
        self, prediction_id: str, load_arrays: bool = False
    ) -> dict[str, Any] | None:
        """One prediction by its id (nirs4all's 16-character ids included)."""
        return super().get_prediction(stored_prediction_id(prediction_id), load_arrays)

    def delete_prediction(self, prediction_id: str) -> bool:
        """Delete one prediction and its arrays; False when it did not exist."""
        return super().delete_prediction(stored_prediction_id(prediction_id))

    # -- raw SQL ----------------------------------------------------------------------------
    def _fetch_pl(self, sql: str, params: list[object] | None = None) -> Any:
        """Run nirs4all's own SQL (`$1` or `?` placeholders) and return a polars DataFrame."""
        text, bound = rewrite_sql(sql, params, self.engine.dialect.name)
        with self.transaction() as session:
            result = session.execute(sa.text(text), bound)
            keys = list(result.keys())
            rows = result.all()
        return rows_to_polars(keys, rows)
