"""Declarative models of the seven workspace tables: columns, keys and constraints only.

Foreign keys stay in the metadata (the ORM, SQLite and PostgreSQL use them, with
ON DELETE CASCADE) but are left out of DuckDB's DDL: DuckDB rejects ON DELETE CASCADE and
its foreign keys break deleting children and parent in one transaction (STACK_FACTS). On
DuckDB the repositories own referential integrity. Secondary indexes follow the same rule:
on DuckDB they would block later ALTERs, and its zone maps serve the scans we do.

Value domains (status, partition, level, ...) are checked in Python, not by CHECK
constraints, because DuckDB cannot add or drop a constraint on an existing table.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from nirs4all_store.types import Float64Array, JSONValue, UTCDateTime, UUIDString, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Objects whose ``info`` carries this key are not created on the named dialects.
SKIP_ON = "nirs4all_skip_on"


def _not_on_duckdb(ddl: Any, target: Any, bind: Any, **kw: Any) -> bool:
    dialect = kw.get("dialect") or (bind.dialect if bind is not None else None)
    return dialect is None or dialect.name != "duckdb"


def fk(column: str, target: str) -> sa.ForeignKeyConstraint:
    """A cascading foreign key that exists everywhere but in DuckDB's DDL."""
    constraint = sa.ForeignKeyConstraint(
        [column], [target], ondelete="CASCADE", info={SKIP_ON: ("duckdb",)}
    )
    constraint.ddl_if(callable_=_not_on_duckdb)
    return constraint


def _only_on_duckdb(ddl: Any, target: Any, bind: Any, **kw: Any) -> bool:
    return not _not_on_duckdb(ddl, target, bind, **kw)


def unique_on_duckdb(column: str, name: str) -> sa.UniqueConstraint:
    """A UNIQUE constraint in DuckDB's CREATE TABLE; elsewhere `unique_index` does the job
    (SQLite cannot add a constraint to an existing table, but it can add an index)."""
    constraint = sa.UniqueConstraint(column, name=name, info={SKIP_ON: ("sqlite", "postgresql")})
    constraint.ddl_if(callable_=_only_on_duckdb)
    return constraint


def unique_index(column: str) -> sa.Index:
    """A unique index for SQLite/PostgreSQL; DuckDB gets `unique_on_duckdb` instead."""
    idx = sa.Index(None, column, unique=True, info={SKIP_ON: ("duckdb",)})
    idx.ddl_if(callable_=_not_on_duckdb)
    return idx


def index(*columns: str) -> sa.Index:
    """A secondary index for SQLite/PostgreSQL (FK lookups, cascades); skipped on DuckDB."""
    idx = sa.Index(None, *columns, info={SKIP_ON: ("duckdb",)})
    idx.ddl_if(callable_=_not_on_duckdb)
    return idx


def _legacy_natural_key() -> sa.UniqueConstraint:
    constraint = sa.UniqueConstraint(
        "pipeline_id",
        "chain_id",
        "fold_id",
        "partition",
        "model_name",
        "branch_id",
        name="uq_predictions_natural_key",
        info={SKIP_ON: ("duckdb",)},
    )
    constraint.ddl_if(callable_=_not_on_duckdb)
    return constraint


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class Run(Base):
    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String, nullable=False)
    status: Mapped[str] = mapped_column(sa.String, nullable=False, default="running")
    config: Mapped[Any | None] = mapped_column(JSONValue, nullable=True)
    datasets: Mapped[Any | None] = mapped_column(JSONValue, nullable=True)
    summary: Mapped[Any | None] = mapped_column(JSONValue, nullable=True)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Carried over from legacy nirs4all workspaces (revision 0002); no FK, as there.
    project_id: Mapped[str | None] = mapped_column(sa.String)
    # Last sign of life of the recording process (revision 0006): see `reap_stale_runs`.
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Pipeline(Base):
    __tablename__ = "pipelines"
    __table_args__ = (fk("run_id", "runs.run_id"), index("run_id"))

    pipeline_id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    run_id: Mapped[str] = mapped_column(sa.String, nullable=False)
    name: Mapped[str] = mapped_column(sa.String, nullable=False)
    expanded_config: Mapped[Any | None] = mapped_column(JSONValue, nullable=True)
    generator_choices: Mapped[Any | None] = mapped_column(JSONValue, nullable=True)
    dataset_name: Mapped[str] = mapped_column(sa.String, nullable=False)
    dataset_hash: Mapped[str | None] = mapped_column(sa.String)
    status: Mapped[str] = mapped_column(sa.String, nullable=False, default="running")
    best_val: Mapped[float | None] = mapped_column(sa.Double)
    best_test: Mapped[float | None] = mapped_column(sa.Double)
    metric: Mapped[str | None] = mapped_column(sa.String)
    duration_ms: Mapped[float | None] = mapped_column(sa.Double)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Chain(Base):
    __tablename__ = "chains"
    __table_args__ = (fk("pipeline_id", "pipelines.pipeline_id"), index("pipeline_id"))

    chain_id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    pipeline_id: Mapped[str] = mapped_column(sa.String, nullable=False)
    steps: Mapped[Any] = mapped_column(JSONValue, nullable=False)
    model_step_idx: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    model_class: Mapped[str] = mapped_column(sa.String, nullable=False)
    preprocessings: Mapped[str | None] = mapped_column(sa.String)
    fold_strategy: Mapped[str] = mapped_column(sa.String, nullable=False, default="per_fold")
    fold_artifacts: Mapped[Any | None] = mapped_column(JSONValue, nullable=True)
    shared_artifacts: Mapped[Any | None] = mapped_column(JSONValue, nullable=True)
    branch_path: Mapped[Any | None] = mapped_column(JSONValue, nullable=True)
    source_index: Mapped[int | None] = mapped_column(sa.Integer)
    model_name: Mapped[str | None] = mapped_column(sa.String)
    metric: Mapped[str | None] = mapped_column(sa.String)
    task_type: Mapped[str | None] = mapped_column(sa.String)
    dataset_name: Mapped[str | None] = mapped_column(sa.String)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # Columns of legacy nirs4all workspaces (revision 0002), kept so adoption loses nothing
    # and `v_chain_summary` reads as it did.
    best_params: Mapped[Any | None] = mapped_column(JSONValue, nullable=True)
    cv_val_score: Mapped[float | None] = mapped_column(sa.Double)
    cv_test_score: Mapped[float | None] = mapped_column(sa.Double)
    cv_train_score: Mapped[float | None] = mapped_column(sa.Double)
    cv_fold_count: Mapped[int | None] = mapped_column(sa.Integer)
    cv_scores: Mapped[Any | None] = mapped_column(JSONValue, nullable=True)
    final_test_score: Mapped[float | None] = mapped_column(sa.Double)
    final_train_score: Mapped[float | None] = mapped_column(sa.Double)
    final_scores: Mapped[Any | None] = mapped_column(JSONValue, nullable=True)


class Prediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (
        fk("pipeline_id", "pipelines.pipeline_id"),
        fk("chain_id", "chains.chain_id"),
        # One prediction per (pipeline, chain, fold, partition, model, branch). A UNIQUE over
        # those columns lets rows with a NULL chain or branch repeat (NULLs are distinct), so
        # the key is also stored as one value, `natural_key` (revision 0005), unique
        # everywhere. SQLite/PostgreSQL keep the revision-0001 constraint too (SQLite cannot
        # drop it in place); DuckDB's table was rebuilt without it.
        _legacy_natural_key(),
        unique_on_duckdb("natural_key", name="uq_predictions_natural_key_uuid"),
        unique_index("natural_key"),
        index("chain_id"),
        index("dataset_name", "partition"),
    )

    prediction_id: Mapped[str] = mapped_column(UUIDString, primary_key=True)
    pipeline_id: Mapped[str] = mapped_column(sa.String, nullable=False)
    chain_id: Mapped[str | None] = mapped_column(sa.String)
    dataset_name: Mapped[str] = mapped_column(sa.String, nullable=False)
    model_name: Mapped[str] = mapped_column(sa.String, nullable=False)
    model_class: Mapped[str] = mapped_column(sa.String, nullable=False)
    fold_id: Mapped[str] = mapped_column(sa.String, nullable=False)
    partition: Mapped[str] = mapped_column(sa.String, nullable=False)
    val_score: Mapped[float | None] = mapped_column(sa.Double)
    test_score: Mapped[float | None] = mapped_column(sa.Double)
    train_score: Mapped[float | None] = mapped_column(sa.Double)
    metric: Mapped[str] = mapped_column(sa.String, nullable=False)
    task_type: Mapped[str] = mapped_column(sa.String, nullable=False)
    n_samples: Mapped[int | None] = mapped_column(sa.Integer)
    n_features: Mapped[int | None] = mapped_column(sa.Integer)
    scores: Mapped[Any | None] = mapped_column(JSONValue, nullable=True)
    best_params: Mapped[Any | None] = mapped_column(JSONValue, nullable=True)
    preprocessings: Mapped[str | None] = mapped_column(sa.String)
    branch_id: Mapped[int | None] = mapped_column(sa.Integer)
    branch_name: Mapped[str | None] = mapped_column(sa.String)
    exclusion_count: Mapped[int | None] = mapped_column(sa.Integer)
    exclusion_rate: Mapped[float | None] = mapped_column(sa.Double)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    refit_context: Mapped[str | None] = mapped_column(sa.String)  # legacy (revision 0002)
    natural_key: Mapped[str | None] = mapped_column(UUIDString)  # revision 0005


class PredictionArrays(Base):
    __tablename__ = "prediction_arrays"
    __table_args__ = (fk("prediction_id", "predictions.prediction_id"),)

    prediction_id: Mapped[str] = mapped_column(UUIDString, primary_key=True)
    y_true: Mapped[np.ndarray | None] = mapped_column(Float64Array(1))
    y_pred: Mapped[np.ndarray | None] = mapped_column(Float64Array(1))
    y_proba: Mapped[np.ndarray | None] = mapped_column(Float64Array(2))
    sample_indices: Mapped[np.ndarray | None] = mapped_column(Float64Array(1, "int64"))
    weights: Mapped[np.ndarray | None] = mapped_column(Float64Array(1))


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (index("content_hash"),)

    artifact_id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    artifact_path: Mapped[str] = mapped_column(sa.String, nullable=False)
    content_hash: Mapped[str] = mapped_column(sa.String, nullable=False)
    operator_class: Mapped[str | None] = mapped_column(sa.String)
    artifact_type: Mapped[str | None] = mapped_column(sa.String)
    format: Mapped[str] = mapped_column(sa.String, nullable=False, default="joblib")
    size_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    ref_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # NULL from a save until a chain references the artifact: while it is NULL and the save
    # (saved_at, else created_at) is younger than the grace period, gc and delete_run spare
    # an unreferenced artifact (another process may be about to reference it).
    referenced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    saved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Legacy cache keys (revision 0002), kept from adopted nirs4all workspaces.
    chain_path_hash: Mapped[str | None] = mapped_column(sa.String)
    input_data_hash: Mapped[str | None] = mapped_column(sa.String)
    dataset_hash: Mapped[str | None] = mapped_column(sa.String)


class Log(Base):
    __tablename__ = "logs"
    __table_args__ = (fk("pipeline_id", "pipelines.pipeline_id"), index("pipeline_id"))

    log_id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    pipeline_id: Mapped[str] = mapped_column(sa.String, nullable=False)
    step_idx: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    operator_class: Mapped[str | None] = mapped_column(sa.String)
    event: Mapped[str] = mapped_column(sa.String, nullable=False)
    duration_ms: Mapped[float | None] = mapped_column(sa.Double)
    message: Mapped[str | None] = mapped_column(sa.Text)
    details: Mapped[Any | None] = mapped_column(JSONValue, nullable=True)
    level: Mapped[str] = mapped_column(sa.String, nullable=False, default="info")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Project(Base):
    """Projects of legacy nirs4all workspaces (revision 0002): `runs.project_id` points here.

    Not in `TABLES`: it is outside the run/pipeline/chain hierarchy the repositories manage.
    """

    __tablename__ = "projects"

    project_id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String, nullable=False)
    description: Mapped[str | None] = mapped_column(sa.String, default="")
    color: Mapped[str | None] = mapped_column(sa.String, default="#14b8a6")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


TABLES = (Run, Pipeline, Chain, Prediction, PredictionArrays, Artifact, Log)


class PipelineTemplate(Base):
    """Reusable pipeline templates of the `PipelineLibrary` (revision 0003).

    Not in `TABLES`: templates live beside the run/pipeline/chain hierarchy, not in it.
    Names are unique in a workspace; tags are a JSON list matched in Python (portable).
    """

    __tablename__ = "pipeline_templates"
    __table_args__ = (sa.UniqueConstraint("name"),)

    template_id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String, nullable=False)
    category: Mapped[str] = mapped_column(sa.String, nullable=False, default="general")
    tags: Mapped[Any | None] = mapped_column(JSONValue, nullable=True)
    description: Mapped[str | None] = mapped_column(sa.Text)
    config: Mapped[Any] = mapped_column(JSONValue, nullable=False)
    metrics: Mapped[Any | None] = mapped_column(JSONValue, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
