"""Core behaviour nirs4all 0.8 relies on, on every backend (and on duckdb 1.x, where
`cursor.rowcount` is -1: run this file in a duckdb 1.4.4 venv too, see docs/nirs4all.md)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import prediction_record, record_pipeline

from nirs4all_store import WorkspaceStore
from nirs4all_store.errors import StoreClosedError, StoreError
from nirs4all_store.repositories import ArtifactRepository, PredictionRepository
from nirs4all_store.repositories.predictions import natural_key


def test_calls_after_close_raise_a_store_error_that_is_a_runtime_error(
    store: WorkspaceStore,
) -> None:
    store.close()
    with pytest.raises(RuntimeError, match="closed") as caught:
        store.list_runs()
    assert isinstance(caught.value, StoreError) and isinstance(caught.value, StoreClosedError)


def test_fold_weights_may_differ_in_length_from_the_samples(store: WorkspaceStore) -> None:
    rec = record_pipeline(store, with_predictions=False)
    record = {**prediction_record(rec.pipeline_id, rec.chain_id), "weights": np.array([0.4, 0.6])}
    (pid,) = store.save_predictions([record])
    stored = store.get_prediction(pid, load_arrays=True)
    assert stored is not None and stored["weights"].tolist() == [0.4, 0.6]
    with pytest.raises(ValueError, match="must have one length"):
        store.save_predictions(
            [{**prediction_record(rec.pipeline_id, rec.chain_id, fold="f1"), "y_pred": np.ones(3)}]
        )


def test_natural_key_lookup_and_array_counts(store: WorkspaceStore) -> None:
    rec = record_pipeline(store, with_predictions=True, n_folds=2)
    row = store.get_prediction(rec.prediction_ids[0])
    assert row is not None
    key = natural_key(
        row["pipeline_id"], row["chain_id"], row["fold_id"], row["partition"],
        row["model_name"], row["branch_id"],
    )  # fmt: skip
    with store.transaction() as session:
        repo = PredictionRepository(session)
        assert repo.id_for_natural_key(key) == rec.prediction_ids[0]
        assert repo.id_for_natural_key(natural_key("x", None, "0", "val", "m", None)) is None
        assert repo.array_counts_by_dataset() == {"wheat": 4}


def test_affected_row_counts_are_real(store: WorkspaceStore) -> None:
    """On duckdb 1.x rowcount is -1: updates of unknown ids must still be KeyErrors, and
    reference-count adjustments must report the rows they touched."""
    rec = record_pipeline(store, with_predictions=False)
    with pytest.raises(KeyError, match="unknown pipeline_id"):
        store.complete_pipeline("no-such-pipeline", 1.0, 1.0, "rmse", 1)
    with pytest.raises(KeyError, match="unknown run_id"):
        store.complete_run("no-such-run", {})
    with store.transaction() as session:
        artifacts = ArtifactRepository(session)
        assert artifacts.adjust({rec.artifact_ids[0]: 1, "ghost": 1}) == 1
        assert artifacts.adjust({rec.artifact_ids[0]: -1}) == 1
    with pytest.raises(KeyError, match="unknown artifact"):
        store.save_chain(rec.pipeline_id, [], 0, "M", fold_artifacts={"f": "ghost-artifact"})
    assert store.delete_run(rec.run_id) > 0


def test_pipeline_log_is_ordered_by_step_then_time(store: WorkspaceStore) -> None:
    rec = record_pipeline(store, with_predictions=False)
    store.log_step(rec.pipeline_id, 2, "PLS", "fit", None, message="late step first")
    store.log_step(rec.pipeline_id, 1, "Scaler", "fit", 1.0, message="a")
    store.log_step(rec.pipeline_id, 1, "Scaler", "output", 2.0, message="b")
    log = store.get_pipeline_log(rec.pipeline_id).to_pylist()
    assert [(r["step_idx"], r["message"]) for r in log] == [
        (1, "a"), (1, "b"), (2, "late step first"),
    ]  # fmt: skip
    assert log[2]["duration_ms"] is None  # no duration: NULL, not 0
