"""The schema of the earlier raw-DuckDB nirs4all store, as read from real workspaces.

Used by `nirs4all_store.legacy` to recognise a legacy `store.duckdb` (and to refuse a file
that is neither legacy nor ours) before anything is written. Column lists are what the
legacy DDL created (`duckdb_tables().sql` of the v4 fixture, DuckDB 1.5.6).
"""

from __future__ import annotations

#: The seven tables every legacy workspace has, in copy order (parents first).
CORE_TABLES: tuple[str, ...] = (
    "runs",
    "pipelines",
    "chains",
    "predictions",
    "prediction_arrays",
    "artifacts",
    "logs",
)

#: Tables a legacy workspace may have besides the core ones.
OPTIONAL_TABLES: tuple[str, ...] = ("projects",)

#: Views the legacy store created; adoption recreates them (revision 0002 defines them).
LEGACY_VIEWS: tuple[str, ...] = ("v_chain_summary",)

#: table -> {column: legacy DuckDB type}. The legacy `duration_ms` columns are INTEGER
#: (ours DOUBLE), `y_proba` is a flat DOUBLE[] (ours DOUBLE[][]) and `sample_indices` is
#: INTEGER[] (ours BIGINT[]); every other shared column has the same type.
LEGACY_COLUMNS: dict[str, dict[str, str]] = {
    "runs": {
        "run_id": "VARCHAR",
        "name": "VARCHAR",
        "config": "JSON",
        "datasets": "JSON",
        "status": "VARCHAR",
        "created_at": "TIMESTAMP",
        "completed_at": "TIMESTAMP",
        "summary": "JSON",
        "error": "VARCHAR",
        "project_id": "VARCHAR",
    },
    "pipelines": {
        "pipeline_id": "VARCHAR",
        "run_id": "VARCHAR",
        "name": "VARCHAR",
        "expanded_config": "JSON",
        "generator_choices": "JSON",
        "dataset_name": "VARCHAR",
        "dataset_hash": "VARCHAR",
        "status": "VARCHAR",
        "created_at": "TIMESTAMP",
        "completed_at": "TIMESTAMP",
        "best_val": "DOUBLE",
        "best_test": "DOUBLE",
        "metric": "VARCHAR",
        "duration_ms": "INTEGER",
        "error": "VARCHAR",
    },
    "chains": {
        "chain_id": "VARCHAR",
        "pipeline_id": "VARCHAR",
        "steps": "JSON",
        "model_step_idx": "INTEGER",
        "model_class": "VARCHAR",
        "preprocessings": "VARCHAR",
        "fold_strategy": "VARCHAR",
        "fold_artifacts": "JSON",
        "shared_artifacts": "JSON",
        "branch_path": "JSON",
        "source_index": "INTEGER",
        "model_name": "VARCHAR",
        "metric": "VARCHAR",
        "task_type": "VARCHAR",
        "best_params": "JSON",
        "dataset_name": "VARCHAR",
        "cv_val_score": "DOUBLE",
        "cv_test_score": "DOUBLE",
        "cv_train_score": "DOUBLE",
        "cv_fold_count": "INTEGER",
        "cv_scores": "JSON",
        "final_test_score": "DOUBLE",
        "final_train_score": "DOUBLE",
        "final_scores": "JSON",
        "created_at": "TIMESTAMP",
    },
    "predictions": {
        "prediction_id": "VARCHAR",
        "pipeline_id": "VARCHAR",
        "chain_id": "VARCHAR",
        "dataset_name": "VARCHAR",
        "model_name": "VARCHAR",
        "model_class": "VARCHAR",
        "fold_id": "VARCHAR",
        "partition": "VARCHAR",
        "val_score": "DOUBLE",
        "test_score": "DOUBLE",
        "train_score": "DOUBLE",
        "metric": "VARCHAR",
        "task_type": "VARCHAR",
        "n_samples": "INTEGER",
        "n_features": "INTEGER",
        "scores": "JSON",
        "best_params": "JSON",
        "preprocessings": "VARCHAR",
        "branch_id": "INTEGER",
        "branch_name": "VARCHAR",
        "exclusion_count": "INTEGER",
        "exclusion_rate": "DOUBLE",
        "refit_context": "VARCHAR",
        "created_at": "TIMESTAMP",
    },
    "prediction_arrays": {
        "prediction_id": "VARCHAR",
        "y_true": "DOUBLE[]",
        "y_pred": "DOUBLE[]",
        "y_proba": "DOUBLE[]",
        "sample_indices": "INTEGER[]",
        "weights": "DOUBLE[]",
    },
    "artifacts": {
        "artifact_id": "VARCHAR",
        "artifact_path": "VARCHAR",
        "content_hash": "VARCHAR",
        "operator_class": "VARCHAR",
        "artifact_type": "VARCHAR",
        "format": "VARCHAR",
        "size_bytes": "BIGINT",
        "ref_count": "INTEGER",
        "chain_path_hash": "VARCHAR",
        "input_data_hash": "VARCHAR",
        "dataset_hash": "VARCHAR",
        "created_at": "TIMESTAMP",
    },
    "logs": {
        "log_id": "VARCHAR",
        "pipeline_id": "VARCHAR",
        "step_idx": "INTEGER",
        "operator_class": "VARCHAR",
        "event": "VARCHAR",
        "duration_ms": "INTEGER",
        "message": "VARCHAR",
        "details": "JSON",
        "level": "VARCHAR",
        "created_at": "TIMESTAMP",
    },
    "projects": {
        "project_id": "VARCHAR",
        "name": "VARCHAR",
        "description": "VARCHAR",
        "color": "VARCHAR",
        "created_at": "TIMESTAMP",
        "updated_at": "TIMESTAMP",
    },
}

#: Legacy columns our initial schema lacked; revision 0002 adds them (same names, types).
LEGACY_EXTRA_COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": ("project_id",),
    "chains": (
        "best_params",
        "cv_val_score",
        "cv_test_score",
        "cv_train_score",
        "cv_fold_count",
        "cv_scores",
        "final_test_score",
        "final_train_score",
        "final_scores",
    ),
    "predictions": ("refit_context",),
    "artifacts": ("chain_path_hash", "input_data_hash", "dataset_hash"),
}

#: Values written where a legacy column is NULL but ours is NOT NULL: the legacy DDL's own
#: DEFAULT (what the legacy store meant by leaving it out). Timestamps get the adoption time
#: (see `nirs4all_store.legacy`); `ref_count` is recomputed, never copied.
NOT_NULL_FILLS: dict[str, str] = {
    "status": "'running'",
    "fold_strategy": "'per_fold'",
    "format": "'joblib'",
    "level": "'info'",
}
TIMESTAMP_FILL_COLUMNS: frozenset[str] = frozenset({"created_at", "updated_at"})
