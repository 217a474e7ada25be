"""`WorkspaceStore`: the facade that composes repositories in units of work.

A workspace is a folder: `store.duckdb` (or a database URL), `artifacts/` (content-addressed
files), `exports/` (created on explicit export only). Every public method runs in one
transaction, or joins the one opened by `store.transaction()`. Cross-aggregate rules
(reference counts, cascading deletes) live here, set-based, inside one transaction.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session, sessionmaker

from nirs4all_store.artifacts import files
from nirs4all_store.artifacts.lock import ArtifactLock
from nirs4all_store.artifacts.verify import VerifyReport, vacuum_database, verify_workspace
from nirs4all_store.db import engine as engines
from nirs4all_store.db.session import UnitOfWork
from nirs4all_store.opening import open_engine
from nirs4all_store.repositories import (
    ArtifactRepository,
    ChainRepository,
    LogRepository,
    PipelineRepository,
    PredictionRepository,
    RunRepository,
)
from nirs4all_store.repositories.artifacts import artifact_id_for
from nirs4all_store.repositories.base import require_ids
from nirs4all_store.types import utcnow
from nirs4all_store.validation import (
    check_id,
    check_uuid,
    new_ids,
    validate_arrays,
    validate_prediction,
)

ARTIFACTS_DIRNAME = "artifacts"
#: How long an artifact saved but not yet referenced by a chain is spared by deletions.
DEFAULT_GRACE_SECONDS = 3600.0
_PENDING_UNLINKS = "nirs4all_pending_unlinks"  # Session.info key: files to delete on commit
EXPORTS_DIRNAME = "exports"


class WorkspaceStore:
    """Persistence of runs, pipelines, chains, predictions, arrays, artifacts and logs.

    `WorkspaceStore("workspace")` opens (creating if needed) a DuckDB workspace folder.
    `url=` (or the NIRS4ALL_STORE_URL environment variable) puts the database on SQLite or
    PostgreSQL instead, with artifacts still in the folder; an `Engine` can be handed in
    too. Tabular results are `pyarrow.Table`s (zero-copy to polars/pandas); single records
    are plain dicts. Use it as a context manager or call `close()`.
    """

    def __init__(
        self,
        workspace: str | os.PathLike[str] | URL | Engine | None = None,
        *,
        url: str | URL | Engine | None = None,
        artifacts_dir: str | os.PathLike[str] | None = None,
        lock_timeout: float = 10.0,
        hold_lock: bool = True,
    ) -> None:
        if workspace is not None and engines.looks_like_url(workspace):
            if url is not None:
                raise ValueError("give the database either as workspace or as url=, not both")
            url, workspace = workspace, None  # type: ignore[assignment]
        if url is None:
            url = engines.url_from_env()
        if workspace is None and artifacts_dir is None:
            raise ValueError(
                "a workspace folder is needed for artifacts: pass WorkspaceStore(path, url=...) "
                "or artifacts_dir=..."
            )
        self.path = Path(workspace).expanduser().resolve() if workspace is not None else None
        self.artifacts_path = (
            Path(artifacts_dir).expanduser().resolve()
            if artifacts_dir is not None
            else self.path / ARTIFACTS_DIRNAME  # type: ignore[operator]
        )
        if self.path is not None:
            if self.path.exists() and not self.path.is_dir():
                raise NotADirectoryError(f"workspace path {self.path} exists and is not a folder")
            self.path.mkdir(parents=True, exist_ok=True)
        self.artifacts_path.mkdir(parents=True, exist_ok=True)
        self.lock_timeout = float(lock_timeout)
        self.hold_lock = bool(hold_lock)
        self._files = files.ArtifactFiles(self.artifacts_path)
        self._artifact_lock = ArtifactLock(self.path or self.artifacts_path)
        self._owns_engine = not isinstance(url, Engine)
        self._closed = False
        self.engine = open_engine(
            self.path, url, lock_timeout=self.lock_timeout, hold_lock=self.hold_lock
        )
        self._uow = UnitOfWork(sessionmaker(self.engine, expire_on_commit=False))

    # -- opening -------------------------------------------------------------------------
    @property
    def url(self) -> URL:
        return self.engine.url

    @property
    def db_file(self) -> Path | None:
        return engines.database_file(self.engine.url)

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Release the database (and its file lock); closing twice is fine."""
        if self._closed:
            return
        self._closed = True
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> WorkspaceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.path or self.engine.url.render_as_string(hide_password=True)
        return f"WorkspaceStore({str(where)!r})"

    def _check_open(self) -> None:
        if self._closed:
            from nirs4all_store.errors import StoreError

            raise StoreError("this WorkspaceStore is closed")

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Group many calls into one commit (all or nothing); yields the Session."""
        self._check_open()
        outermost = self._uow.current is None
        with self._uow.transaction() as session:
            pending = session.info.setdefault(_PENDING_UNLINKS, [])
            yield session
        # Committed: only now may the files of artifact rows deleted inside it go.
        if outermost and pending:
            with self._artifact_lock.exclusive():
                self._unlink_unused(pending)

    def _run(self, what: str, fn: Any, **kw: Any) -> Any:
        self._check_open()
        return self._uow.run(fn, what, **kw)

    # -- runs ----------------------------------------------------------------------------
    def begin_run(
        self, name: str, config: Any = None, datasets: Any = None, *, run_id: str | None = None
    ) -> str:
        """Start a run (status 'running'); returns its id (`run_id` to choose it)."""
        return self._run(
            "begin_run", lambda s: RunRepository(s).create(name, config, datasets, run_id=run_id)
        )

    def complete_run(self, run_id: str, summary: Any = None) -> None:
        self._run(
            "complete_run", lambda s: RunRepository(s).finish(run_id, "completed", summary=summary)
        )

    def fail_run(self, run_id: str, error: str) -> None:
        self._run("fail_run", lambda s: RunRepository(s).finish(run_id, "failed", error=error))

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        return self._run("get_run", lambda s: RunRepository(s).get(run_id))

    def list_runs(
        self,
        status: str | None = None,
        name: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> pa.Table:
        """Runs, newest first."""
        return self._run(
            "list_runs",
            lambda s: RunRepository(s).list(status=status, name=name, limit=limit, offset=offset),
        )

    # -- pipelines -----------------------------------------------------------------------
    def begin_pipeline(
        self,
        run_id: str,
        name: str,
        expanded_config: Any = None,
        generator_choices: Any = None,
        dataset_name: str = "",
        dataset_hash: str | None = None,
        *,
        pipeline_id: str | None = None,
    ) -> str:
        """Start a pipeline of a run; KeyError for an unknown run.

        `pipeline_id` lets a caller choose the id (e.g. to record the pipeline later or from
        another thread); by default a new UUID is made.
        """

        def work(s: Session) -> str:
            RunRepository(s).require(run_id)
            return PipelineRepository(s).create(
                run_id,
                name,
                expanded_config,
                generator_choices,
                dataset_name,
                dataset_hash,
                pipeline_id=pipeline_id,
            )

        return self._run("begin_pipeline", work)

    def save_pipelines(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        """Many pipelines in one statement, e.g. pipelines that already ran.

        Each record holds `begin_pipeline`'s arguments and optionally `status` ('running',
        'completed', or 'failed' with `error`), `best_val`, `best_test`, `metric` and
        `duration_ms`. KeyError (nothing written) for an unknown run. Returns the ids.
        """
        rows = [PipelineRepository.validate(**record) for record in _as_records(records)]

        def work(s: Session) -> list[str]:
            require_ids(s, RunRepository.table.c.run_id, {row["run_id"] for row in rows})
            PipelineRepository(s).insert_many(rows)
            return [row["pipeline_id"] for row in rows]

        return self._run("save_pipelines", work)

    def complete_pipeline(
        self,
        pipeline_id: str,
        best_val: float | None = None,
        best_test: float | None = None,
        metric: str | None = None,
        duration_ms: float | None = None,
    ) -> None:
        self._run(
            "complete_pipeline",
            lambda s: PipelineRepository(s).complete(
                pipeline_id, best_val, best_test, metric, duration_ms
            ),
        )

    def fail_pipeline(self, pipeline_id: str, error: str) -> None:
        """Mark a pipeline failed; its predictions, chains and logs go, references released."""

        def work(s: Session) -> None:
            pipelines = PipelineRepository(s)
            pipelines.require(pipeline_id)
            self._delete_pipeline_data(s, sa.select(sa.literal(pipeline_id)))
            pipelines.fail(pipeline_id, error)

        self._run("fail_pipeline", work)

    def get_pipeline(self, pipeline_id: str) -> dict[str, Any] | None:
        return self._run("get_pipeline", lambda s: PipelineRepository(s).get(pipeline_id))

    def list_pipelines(
        self,
        run_id: str | None = None,
        dataset_name: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> pa.Table:
        """Pipelines, newest first."""
        return self._run(
            "list_pipelines",
            lambda s: PipelineRepository(s).list(
                run_id=run_id, dataset_name=dataset_name, status=status, limit=limit, offset=offset
            ),
        )

    # -- chains --------------------------------------------------------------------------
    def save_chain(
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
        model_name: str | None = None,
        metric: str | None = None,
        task_type: str | None = None,
        dataset_name: str | None = None,
    ) -> str:
        """Record a chain and take one reference on each distinct artifact it names."""
        record = {k: v for k, v in locals().items() if k != "self"}
        return self.save_chains([record])[0]

    def save_chains(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        """Many chains in one transaction (each record holds `save_chain`'s arguments).

        One insert, and one reference-count update per distinct count: recording a group of
        pipelines costs a few statements, not a few per chain. Returns the ids in order.
        """
        rows = [ChainRepository.validate(**record) for record in _as_records(records)]

        def work(s: Session) -> list[str]:
            pipeline_ids = {r["pipeline_id"] for r, _ in rows}
            require_ids(s, PipelineRepository.table.c.pipeline_id, pipeline_ids)
            ChainRepository(s).insert_many([row for row, _ in rows])
            counts = Counter(ref for _, refs in rows for ref in refs)
            artifacts = ArtifactRepository(s)
            if artifacts.adjust(counts) != len(counts):  # unknown ids (or a concurrent gc)
                unknown = artifacts.missing(counts)
                owners = sorted({r["pipeline_id"] for r, refs in rows if refs & set(unknown)})
                raise KeyError(
                    f"unknown artifact id(s) {unknown} in chain(s) of pipeline(s) {owners}"
                )
            return [row["chain_id"] for row, _ in rows]

        return self._run("save_chains", work)

    def get_chain(self, chain_id: str) -> dict[str, Any] | None:
        return self._run("get_chain", lambda s: ChainRepository(s).get(chain_id))

    def get_chains_for_pipeline(self, pipeline_id: str) -> pa.Table:
        return self._run(
            "get_chains_for_pipeline", lambda s: ChainRepository(s).for_pipeline(pipeline_id)
        )

    # -- predictions ---------------------------------------------------------------------
    def save_prediction(
        self,
        pipeline_id: str,
        chain_id: str | None,
        dataset_name: str,
        model_name: str,
        model_class: str,
        fold_id: str,
        partition: str,
        val_score: float | None = None,
        test_score: float | None = None,
        train_score: float | None = None,
        metric: str = "rmse",
        task_type: str = "regression",
        n_samples: int | None = None,
        n_features: int | None = None,
        scores: Any = None,
        best_params: Any = None,
        branch_id: int | None = None,
        branch_name: str | None = None,
        exclusion_count: int = 0,
        exclusion_rate: float = 0.0,
        preprocessings: str = "",
        prediction_id: str | None = None,
    ) -> str:
        """Record one prediction (no arrays); returns its id. Prefer `save_predictions` in bulk."""
        record = {k: v for k, v in locals().items() if k != "self"}
        return self.save_predictions([record])[0]

    def save_prediction_arrays(
        self,
        prediction_id: str,
        y_true: Any = None,
        y_pred: Any = None,
        y_proba: Any = None,
        sample_indices: Any = None,
        weights: Any = None,
    ) -> None:
        """Attach dense arrays to a stored prediction (KeyError for an unknown one)."""
        prediction_id = check_uuid("prediction_id", prediction_id)
        arrays = validate_arrays(prediction_id, locals())
        if arrays is None:
            raise ValueError("save_prediction_arrays needs at least one array")

        def work(s: Session) -> None:
            repo = PredictionRepository(s)
            if not repo.exists(prediction_id):
                raise KeyError(f"unknown prediction_id {prediction_id!r}")
            repo.delete_arrays([prediction_id])
            repo.insert_many([], [arrays])

        self._run("save_prediction_arrays", work)

    def save_predictions(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        """Store many predictions with their arrays in one transaction (the fast path).

        Each record holds prediction fields (as `save_prediction`) and optionally the arrays
        y_true, y_pred, y_proba (2-D), sample_indices, weights. All or nothing.
        """
        records = _as_records(records)
        rows, arrays = [], []
        now = utcnow()
        fresh_ids = new_ids(len(records))
        for i, record in enumerate(records):
            row = validate_prediction(record, now, fresh_ids[i])
            if row["n_samples"] is None and record.get("y_true") is not None:
                row["n_samples"] = len(record["y_true"])
            rows.append(row)
            arr = validate_arrays(row["prediction_id"], record)
            if arr is not None:
                arrays.append(arr)

        def work(s: Session) -> list[str]:
            pipeline_ids = {r["pipeline_id"] for r in rows}
            require_ids(s, PipelineRepository.table.c.pipeline_id, pipeline_ids)
            chains = {r["chain_id"] for r in rows if r["chain_id"] is not None}
            require_ids(s, ChainRepository.table.c.chain_id, chains)
            PredictionRepository(s).insert_many(rows, arrays)
            return [r["prediction_id"] for r in rows]

        return self._run("save_predictions", work)

    def get_prediction(
        self, prediction_id: str, load_arrays: bool = False
    ) -> dict[str, Any] | None:
        return self._run(
            "get_prediction",
            lambda s: PredictionRepository(s).get(prediction_id, load_arrays=load_arrays),
        )

    def query_predictions(
        self,
        *,
        run_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        **filters: Any,
    ) -> pa.Table:
        """Predictions matching equality filters (dataset_name, partition, branch_id=0, ...)."""
        return self._run(
            "query_predictions",
            lambda s: PredictionRepository(s).query(
                filters, run_id=run_id, limit=limit, offset=offset
            ),
        )

    def top_predictions(
        self,
        n: int = 10,
        metric: str = "val_score",
        ascending: bool = True,
        partition: str | None = "val",
        dataset_name: str | None = None,
        group_by: str | None = None,
        run_id: str | None = None,
        **filters: Any,
    ) -> pa.Table:
        """The best `n` predictions by a score column; with `group_by`, the best n per group.

        `run_id` and equality `filters` (as `query_predictions` takes them) narrow the set.
        """
        return self._run(
            "top_predictions",
            lambda s: PredictionRepository(s).top(
                n,
                metric=metric,
                ascending=ascending,
                partition=partition,
                dataset_name=dataset_name,
                group_by=group_by,
                filters=filters,
                run_id=run_id,
            ),
        )

    def delete_prediction(self, prediction_id: str) -> bool:
        """Delete one prediction and its arrays; False when it did not exist."""
        check_id("prediction_id", prediction_id)
        return self._run(
            "delete_prediction", lambda s: PredictionRepository(s).delete([prediction_id]) > 0
        )

    # -- logs ----------------------------------------------------------------------------
    def log_step(
        self,
        pipeline_id: str,
        step_idx: int,
        operator_class: str | None,
        event: str,
        duration_ms: float | None = 0.0,
        message: str | None = None,
        details: Any = None,
        level: str = "info",
    ) -> str:
        def work(s: Session) -> str:
            PipelineRepository(s).require(pipeline_id)
            return LogRepository(s).create(
                pipeline_id, step_idx, operator_class, event, duration_ms, message, details, level
            )

        return self._run("log_step", work)

    def log_steps(self, pipeline_id: str, entries: Sequence[Mapping[str, Any]]) -> list[str]:
        """Many `log_step` entries of one pipeline in one statement (keys as `log_step`)."""

        def work(s: Session) -> list[str]:
            PipelineRepository(s).require(pipeline_id)
            return LogRepository(s).create_many(entries, pipeline_id)

        return self._run("log_steps", work)

    def save_logs(self, entries: Sequence[Mapping[str, Any]]) -> list[str]:
        """Log entries of any pipelines in one statement: keys as `log_step`, `pipeline_id`
        included. KeyError (nothing written) if a pipeline is unknown."""
        entries = _as_records(entries, "entries")
        pipeline_ids = {check_id("pipeline_id", e.get("pipeline_id")) for e in entries}

        def work(s: Session) -> list[str]:
            require_ids(s, PipelineRepository.table.c.pipeline_id, pipeline_ids)
            return LogRepository(s).create_many(entries)

        return self._run("save_logs", work)

    def get_pipeline_log(self, pipeline_id: str) -> pa.Table:
        return self._run("get_pipeline_log", lambda s: LogRepository(s).for_pipeline(pipeline_id))

    def get_run_log_summary(self, run_id: str) -> pa.Table:
        """One row per pipeline: total duration, step count, warning and error counts."""
        return self._run("get_run_log_summary", lambda s: LogRepository(s).run_summary(run_id))

    # -- artifacts -----------------------------------------------------------------------
    def save_artifact(
        self,
        obj: Any,
        operator_class: str | None = None,
        artifact_type: str | None = None,
        format: str = "joblib",
    ) -> str:
        """Serialise and store `obj` content-addressed; identical bytes share one id and file.

        The file is in place (atomically) before the row commits. No reference is taken:
        `save_chain` does that. An unreferenced artifact survives `gc_artifacts` for its
        grace period.
        """
        return self.save_artifacts([(obj, operator_class, artifact_type, format)])[0]

    def save_artifacts(self, items: Sequence[Any]) -> list[str]:
        """`save_artifact` for many objects at once: one lookup, one insert, one commit.

        Each item is `(obj, operator_class, artifact_type[, format])` or a dict with those
        keys (`obj` required, `format` defaults to "joblib"). Returns the ids in order.
        """
        prepared = [_artifact_item(i, item) for i, item in enumerate(items)]
        blobs = [files.serialize(obj, fmt) for obj, _, _, fmt in prepared]

        def work(s: Session) -> list[str]:
            repo = ArtifactRepository(s)
            existing = repo.find_by_hashes(keys)
            new: dict[tuple[str, str], dict[str, Any]] = {}
            for obj_meta, blob, key, relpath in zip(prepared, blobs, keys, relpaths, strict=True):
                if key not in existing and key not in new:
                    new[key] = {
                        "artifact_id": artifact_id_for(*key),
                        "artifact_path": relpath,
                        "content_hash": key[0],
                        "operator_class": obj_meta[1],
                        "artifact_type": obj_meta[2],
                        "format": key[1],
                        "size_bytes": len(blob),
                    }
            repo.mark_saved(r["artifact_id"] for r in existing.values())
            repo.insert_many(list(new.values()))
            ids = {
                **{k: r["artifact_id"] for k, r in existing.items()},
                **{k: r["artifact_id"] for k, r in new.items()},
            }
            return [ids[key] for key in keys]

        with self._artifact_lock.shared():
            stored = files.put_many(
                self._files,
                [(blob, fmt) for (_, _, _, fmt), blob in zip(prepared, blobs, strict=True)],
            )
            keys = [
                (content_hash, fmt)
                for (content_hash, _), (_, _, _, fmt) in zip(stored, prepared, strict=True)
            ]
            relpaths = [relpath for _, relpath in stored]
            return self._run("save_artifacts", work, retry_integrity=True)

    def get_artifact(self, artifact_id: str) -> dict[str, Any] | None:
        return self._run("get_artifact", lambda s: ArtifactRepository(s).get(artifact_id))

    def _artifact_row(self, artifact_id: str) -> dict[str, Any]:
        check_id("artifact_id", artifact_id)
        row = self.get_artifact(artifact_id)
        if row is None:
            raise KeyError(f"unknown artifact_id {artifact_id!r}")
        return row

    def get_artifact_path(self, artifact_id: str) -> Path:
        """Absolute path of an artifact's file (stable across reopen)."""
        return self._files.path(self._artifact_row(artifact_id)["artifact_path"])

    def load_artifact(self, artifact_id: str) -> Any:
        """The stored object, after checking its bytes against the recorded SHA-256."""
        row = self._artifact_row(artifact_id)
        data = self._files.read_verified(row["artifact_path"], row["content_hash"], artifact_id)
        return files.deserialize(data, row["format"])

    def list_artifacts(self) -> pa.Table:
        return self._run("list_artifacts", lambda s: ArtifactRepository(s).list())

    # -- deletion and garbage collection --------------------------------------------------
    def _delete_pipeline_data(
        self, s: Session, pipeline_ids: sa.Select[Any]
    ) -> tuple[int, set[str]]:
        """Delete predictions (+arrays), logs and chains of the pipelines; release references.

        Returns (rows deleted, artifact ids whose count dropped). Set-based, in dependency
        order (DuckDB has no ON DELETE CASCADE).
        """
        chains = ChainRepository(s)
        chain_ids = chains.ids_of_pipelines(pipeline_ids)
        released: Counter[str] = chains.reference_counts(chain_ids)
        deleted = PredictionRepository(s).delete_of_pipelines(pipeline_ids, chain_ids)
        deleted += LogRepository(s).delete_of_pipelines(pipeline_ids)
        deleted += chains.delete_of_pipelines(pipeline_ids)
        ArtifactRepository(s).adjust({aid: -n for aid, n in released.items()})
        return deleted, set(released)

    def delete_run(self, run_id: str, delete_artifacts: bool = True) -> int:
        """Delete a run and everything under it in one transaction; returns rows deleted.

        With `delete_artifacts`, artifacts whose last reference this call released are
        removed too (rows in the transaction, files after it commits), except bytes saved
        again (by any process) since their last reference, for the grace period of
        `gc_artifacts`: they may be about to be referenced by a new chain.
        """
        check_id("run_id", run_id)

        def work(s: Session) -> tuple[int, list[dict[str, Any]]]:
            runs = RunRepository(s)
            runs.require(run_id)
            pipeline_ids = PipelineRepository(s).ids_of_run(run_id)
            deleted, released = self._delete_pipeline_data(s, pipeline_ids)
            deleted += PipelineRepository(s).delete_of_run(run_id)
            deleted += runs.delete(run_id)
            gone: list[dict[str, Any]] = []
            if delete_artifacts and released:
                repo = ArtifactRepository(s)
                cutoff = utcnow() - dt.timedelta(seconds=DEFAULT_GRACE_SECONDS)
                gone = repo.unreferenced(released, young_cutoff=cutoff)
                deleted += repo.delete([g["artifact_id"] for g in gone], young_cutoff=cutoff)
            return deleted, gone

        with self._artifact_lock.exclusive():
            deleted, gone = self._run("delete_run", work)
            self._unlink_unused(gone)
        return deleted

    def gc_artifacts(
        self, grace_seconds: float = DEFAULT_GRACE_SECONDS, dry_run: bool = False
    ) -> int | list[dict[str, Any]]:
        """Remove artifacts no chain references (rows first, then files).

        An artifact saved less than `grace_seconds` ago that no chain has referenced since
        is kept (it may be in flight in another process); `grace_seconds=0` collects those
        too. Returns the number removed, or with `dry_run=True` the list of artifacts (id,
        path, hash) that would go.
        """
        if grace_seconds < 0:
            raise ValueError(f"grace_seconds must be >= 0, got {grace_seconds!r}")
        cutoff = utcnow() - dt.timedelta(seconds=float(grace_seconds))

        def work(s: Session) -> tuple[list[dict[str, Any]], int]:
            repo = ArtifactRepository(s)
            gone = repo.unreferenced(young_cutoff=cutoff)
            if dry_run:
                return gone, 0
            return gone, repo.delete([g["artifact_id"] for g in gone], young_cutoff=cutoff)

        with self._artifact_lock.exclusive():
            gone, removed = self._run("gc_artifacts", work)
            if dry_run:
                return gone
            self._unlink_unused(gone)
        return removed

    def _unlink_unused(self, gone: Sequence[Mapping[str, Any]]) -> None:
        """Delete the files of removed rows unless another row still points at the path.

        Inside `store.transaction()` the rows may still roll back: the files are deleted
        when (and only if) that transaction commits.
        """
        if not gone:
            return
        session = self._uow.current
        if session is not None:
            session.info.setdefault(_PENDING_UNLINKS, []).extend(gone)
            return
        in_use = self._run(
            "gc_artifacts",
            lambda s: ArtifactRepository(s).paths_in_use(g["artifact_path"] for g in gone),
        )
        for g in gone:
            if g["artifact_path"] not in in_use:
                self._files.delete(g["artifact_path"])

    # -- replay and exports (implemented in replay.py, bundle.py, exports.py) --------------
    def replay_chain(
        self, chain_id: str, X: Any, wavelengths: Any = None, proba: bool = False
    ) -> Any:
        """Predict on new spectra with a stored chain (see `nirs4all_store.replay`)."""
        from nirs4all_store.workbench.replay import replay_chain

        return replay_chain(self, chain_id, X, wavelengths=wavelengths, proba=proba)

    def export_chain(
        self, chain_id: str, output_path: str | os.PathLike[str], format: str = "n4a"
    ) -> Path:
        """Write a portable `.n4a` bundle of a chain (see `nirs4all_store.bundle`)."""
        from nirs4all_store.workbench.bundle import export_chain

        return export_chain(self, chain_id, output_path, format=format)

    def export_predictions_parquet(
        self, output_path: str | os.PathLike[str], include_arrays: bool = False, **filters: Any
    ) -> Path:
        from nirs4all_store.workbench.exports import export_predictions_parquet

        return export_predictions_parquet(
            self, output_path, include_arrays=include_arrays, **filters
        )

    def export_run(self, run_id: str, output_path: str | os.PathLike[str]) -> Path:
        from nirs4all_store.workbench.exports import export_run

        return export_run(self, run_id, output_path)

    def export_pipeline_config(self, pipeline_id: str, output_path: str | os.PathLike[str]) -> Path:
        from nirs4all_store.workbench.exports import export_pipeline_config

        return export_pipeline_config(self, pipeline_id, output_path)

    def exports_path(self) -> Path:
        """The workspace's `exports/` folder (created on first explicit export)."""
        if self.path is None:
            raise ValueError("this store has no workspace folder: give export paths explicitly")
        return self.path / EXPORTS_DIRNAME

    # -- maintenance ---------------------------------------------------------------------
    def verify(
        self, repair: bool = False, grace_seconds: float = DEFAULT_GRACE_SECONDS
    ) -> VerifyReport:
        """Check reference counts, files and hashes; `repair=True` fixes counts and orphans."""
        self._check_open()
        return verify_workspace(self, repair=repair, grace_seconds=grace_seconds)

    def vacuum(self) -> dict[str, Any]:
        """Reclaim space (DuckDB: copy into a fresh file and swap atomically)."""
        self._check_open()
        return vacuum_database(self)


def _as_records(records: Any, name: str = "records") -> Sequence[Mapping[str, Any]]:
    """`records` of a bulk call, checked: a sequence (not one dict) of dicts."""
    if isinstance(records, Mapping) or not isinstance(records, Sequence):
        raise TypeError(f"{name} must be a sequence of dicts, got {type(records).__name__}")
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise TypeError(f"{name}[{i}] must be a dict, got {type(record).__name__}")
    return records


def _artifact_item(index: int, item: Any) -> tuple[Any, str | None, str | None, str]:
    """(obj, operator_class, artifact_type, format) of one `save_artifacts` item."""
    if isinstance(item, Mapping):
        if "obj" not in item:
            raise ValueError(f"items[{index}] needs an 'obj' key, got keys {sorted(item)}")
        values = (
            item["obj"],
            item.get("operator_class"),
            item.get("artifact_type"),
            item.get("format", "joblib"),
        )
    elif isinstance(item, tuple) and 1 <= len(item) <= 4:
        values = (*item, *(None, None, "joblib")[len(item) - 1 :])
    else:
        raise TypeError(
            f"items[{index}] must be a (obj, operator_class, artifact_type[, format]) tuple "
            f"or a dict, got {type(item).__name__}"
        )
    files.check_format(values[3])
    return values  # type: ignore[return-value]
