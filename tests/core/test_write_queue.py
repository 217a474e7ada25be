"""Row calls inside `store.transaction()` are queued and flushed in bulk (issue 16).

On every backend: reads inside the transaction see the queued rows (every query method),
a bad row call fails at once and the transaction can go on or roll back, a rollback leaves
nothing, and a SIGKILL inside a transaction loses only that transaction (real process).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import prediction_record
from sklearn.preprocessing import StandardScaler

from nirs4all_store import ConstraintError, WorkspaceStore


def _chain(store: WorkspaceStore, pipeline_id: str, artifact_id: str) -> str:
    return store.save_chain(
        pipeline_id,
        [{"step_idx": 0, "operator_class": "StandardScaler"}],
        0,
        "StandardScaler",
        fold_artifacts={"fold_0": artifact_id},
    )


def _record_one(store: WorkspaceStore, run_id: str, seed: int = 0) -> dict[str, Any]:
    """A pipeline through the row API: artifact, chain, predictions + arrays, logs."""
    pipeline_id = store.begin_pipeline(run_id, f"p{seed}", {"seed": seed}, dataset_name="wheat")
    artifact_id = store.save_artifact(StandardScaler().fit(np.eye(3) * (seed + 1)))
    chain_id = _chain(store, pipeline_id, artifact_id)
    ids = []
    for partition, score in (("val", 0.3 + seed), ("test", 0.4 + seed)):
        record = prediction_record(pipeline_id, chain_id, partition=partition, score=score)
        fields = {
            k: v for k, v in record.items() if k not in ("y_true", "y_pred", "sample_indices")
        }
        pid = store.save_prediction(**fields)
        store.save_prediction_arrays(pid, y_true=record["y_true"], y_pred=record["y_pred"])
        ids.append(pid)
    store.log_step(pipeline_id, 0, "StandardScaler", "fit", 12.0)
    store.log_steps(pipeline_id, [{"step_idx": 1, "event": "predict", "level": "warning"}])
    store.complete_pipeline(pipeline_id, 0.3 + seed, 0.4 + seed, "rmse", 50.0)
    return {
        "pipeline_id": pipeline_id,
        "chain_id": chain_id,
        "artifact_id": artifact_id,
        "prediction_ids": ids,
        "y_true": record["y_true"],
    }


def _assert_visible(store: WorkspaceStore, run_id: str, rec: dict[str, Any]) -> None:
    """Every query method sees the recorded pipeline."""
    pipeline_id, chain_id = rec["pipeline_id"], rec["chain_id"]
    assert store.get_pipeline(pipeline_id)["status"] == "completed"
    assert pipeline_id in store.list_pipelines(run_id=run_id).column("pipeline_id").to_pylist()
    assert store.count_pipelines(run_id=run_id) >= 1
    assert store.get_chain(chain_id)["pipeline_id"] == pipeline_id
    assert store.get_chains_for_pipeline(pipeline_id).num_rows == 1
    assert store.count_chains(pipeline_id) == 1
    test_id = rec["prediction_ids"][1]
    got = store.get_prediction(test_id, load_arrays=True)
    assert got is not None and got["partition"] == "test"
    np.testing.assert_array_equal(got["y_true"], rec["y_true"])
    found = store.query_predictions(run_id=run_id, pipeline_id=pipeline_id)
    assert sorted(found.column("prediction_id").to_pylist()) == sorted(rec["prediction_ids"])
    assert store.count_predictions(run_id=run_id, pipeline_id=pipeline_id) == 2
    top = store.top_predictions(1, partition="test", run_id=run_id, pipeline_id=pipeline_id)
    assert top.column("prediction_id").to_pylist() == [test_id]
    log = store.get_pipeline_log(pipeline_id)
    assert log.column("event").to_pylist() == ["fit", "predict"]
    summary = store.get_run_log_summary(run_id).to_pylist()
    mine = next(row for row in summary if row["pipeline_id"] == pipeline_id)
    assert (mine["log_count"], mine["warning_count"]) == (2, 1)
    assert store.get_artifact(rec["artifact_id"])["ref_count"] == 1
    assert store.verify().ok


def test_reads_inside_a_transaction_see_its_queued_rows(store: WorkspaceStore) -> None:
    run_id = store.begin_run("queued")
    with store.transaction():
        rec = _record_one(store, run_id)
        _assert_visible(store, run_id, rec)
        more = _record_one(store, run_id, seed=1)  # queued after a flush
        _assert_visible(store, run_id, more)
    _assert_visible(store, run_id, rec)
    _assert_visible(store, run_id, more)


def test_rows_queued_in_a_transaction_are_committed_with_it(
    store: WorkspaceStore, open_store: Any
) -> None:
    run_id = store.begin_run("committed")
    with store.transaction():
        rec = _record_one(store, run_id)
    store.close()
    _assert_visible(open_store(), run_id, rec)


def test_a_bad_row_call_fails_at_once_and_the_transaction_goes_on(store: WorkspaceStore) -> None:
    run_id = store.begin_run("bad rows")
    with store.transaction():
        pipeline_id = store.begin_pipeline(run_id, "p", dataset_name="wheat")
        with pytest.raises(KeyError, match="unknown pipeline_id"):
            store.log_step("not-a-pipeline", 0, None, "fit")
        with pytest.raises(KeyError, match="unknown run_id"):
            store.begin_pipeline("no-such-run", "p2")
        with pytest.raises(ValueError, match="partition"):
            store.save_prediction(pipeline_id, None, "wheat", "PLS", "PLS", "0", "bogus")
        with pytest.raises(KeyError, match="unknown artifact id"):
            store.save_chain(pipeline_id, [], 0, "PLS", fold_artifacts={"fold_0": "nope"})
        with pytest.raises(KeyError, match="unknown prediction_id"):
            store.save_prediction_arrays("00000000-0000-0000-0000-000000000000", y_pred=np.zeros(3))
        kept = store.save_prediction(pipeline_id, None, "wheat", "PLS", "PLS", "0", "val", 0.5)
        with pytest.raises(ConstraintError, match="already has fold '0'"):
            store.save_prediction(pipeline_id, None, "wheat", "PLS", "PLS", "0", "val", 0.7)
        store.log_step(pipeline_id, 0, None, "fit")
    assert store.get_prediction(kept)["val_score"] == 0.5
    assert store.count_predictions(run_id=run_id) == 1
    assert store.get_pipeline_log(pipeline_id).num_rows == 1


def test_a_duplicate_of_a_stored_prediction_fails_at_the_call(store: WorkspaceStore) -> None:
    run_id = store.begin_run("dup")
    pipeline_id = store.begin_pipeline(run_id, "p")  # created outside the transaction
    store.save_prediction(pipeline_id, None, "wheat", "PLS", "PLS", "0", "val", 0.5)
    with store.transaction():
        with pytest.raises(ConstraintError):
            store.save_prediction(pipeline_id, None, "wheat", "PLS", "PLS", "0", "val", 0.9)
        store.save_prediction(pipeline_id, None, "wheat", "PLS", "PLS", "1", "val", 0.9)
    assert store.count_predictions(run_id=run_id) == 2


def test_arrays_of_a_stored_prediction_are_replaced(store: WorkspaceStore) -> None:
    run_id = store.begin_run("arrays")
    pipeline_id = store.begin_pipeline(run_id, "p")
    pid = store.save_prediction(pipeline_id, None, "wheat", "PLS", "PLS", "0", "val", 0.5)
    store.save_prediction_arrays(pid, y_true=np.arange(3.0), y_pred=np.arange(3.0))
    with store.transaction():
        store.save_prediction_arrays(pid, y_true=np.ones(4), y_pred=np.zeros(4))
        np.testing.assert_array_equal(
            store.get_prediction(pid, load_arrays=True)["y_true"], np.ones(4)
        )
    np.testing.assert_array_equal(
        store.get_prediction(pid, load_arrays=True)["y_pred"], np.zeros(4)
    )


def test_rollback_leaves_nothing(store: WorkspaceStore) -> None:
    run_id = store.begin_run("rolled back")
    with pytest.raises(RuntimeError, match="abandon"), store.transaction():
        rec = _record_one(store, run_id)
        assert store.count_predictions(run_id=run_id) == 2  # flushed inside, then undone
        _record_one(store, run_id, seed=1)  # queued only
        raise RuntimeError("abandon")
    assert store.get_pipeline(rec["pipeline_id"]) is None
    assert store.count_pipelines(run_id=run_id) == 0
    assert store.count_predictions(run_id=run_id) == 0
    assert store.count_chains(rec["pipeline_id"]) == 0
    report = store.verify()
    # The file the read flushed stays an orphan until gc's grace period ends; the second
    # pipeline's artifact was only queued, so its file was never written.
    assert len(report.orphan_files) == 1, report
    assert not (report.ref_count_mismatches or report.missing_files), report


def test_a_delete_inside_a_transaction_makes_parents_be_looked_up_again(
    store: WorkspaceStore,
) -> None:
    run_id = store.begin_run("delete inside")
    with store.transaction():
        pipeline_id = store.begin_pipeline(run_id, "p")
        store.log_step(pipeline_id, 0, None, "fit")
        other = store.begin_run("other")
        store.delete_run(run_id)  # flushes, deletes: the queue's known parents are forgotten
        with pytest.raises(KeyError, match="unknown pipeline_id"):
            store.log_step(pipeline_id, 1, None, "fit")
    assert store.get_run(run_id) is None and store.get_run(other) is not None


def start_child(code: str) -> subprocess.Popen[str]:
    """`code` in a fresh interpreter, its output piped (a writer to kill)."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


_KILLED = """
import os, sys, time
import numpy as np
from nirs4all_store import WorkspaceStore
store = WorkspaceStore({workspace!r}, url={url!r})
run_id = store.begin_run("kill")
with store.transaction():
    p1 = store.begin_pipeline(run_id, "committed")
    store.save_prediction(p1, None, "d", "PLS", "PLS", "0", "val", 0.5)
    store.log_step(p1, 0, None, "fit")
print(run_id, p1, flush=True)
with store.transaction():
    p2 = store.begin_pipeline(run_id, "lost")
    store.save_prediction(p2, None, "d", "PLS", "PLS", "0", "val", 0.5)
    store.log_step(p2, 0, None, "fit")
    store.count_predictions()  # flushed inside the open transaction
    store.save_prediction(p2, None, "d", "PLS", "PLS", "1", "val", 0.5)  # queued
    print("inside", flush=True)
    time.sleep(120)
"""


def test_a_sigkill_inside_a_transaction_loses_only_that_transaction(
    workspace: Path, database_url: str | None, open_store: Any
) -> None:
    child = start_child(_KILLED.format(workspace=str(workspace), url=database_url))
    assert child.stdout is not None
    run_id, p1 = child.stdout.readline().split()
    assert child.stdout.readline().strip() == "inside", child.stderr.read() if child.stderr else ""
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    after = open_store(lock_timeout=30)
    assert after.list_pipelines(run_id=run_id).column("pipeline_id").to_pylist() == [p1]
    assert after.count_predictions(run_id=run_id) == 1
    assert after.get_pipeline_log(p1).num_rows == 1
    assert after.verify().ok


def test_artifacts_saved_in_a_transaction_are_written_at_its_flush(store: WorkspaceStore) -> None:
    scaler = StandardScaler().fit(np.arange(12.0).reshape(4, 3))
    before = store.save_artifact(scaler)  # outside: written at once
    with store.transaction():
        again = store.save_artifact(scaler)  # same bytes: same id, no new file
        other = store.save_artifact(StandardScaler().fit(np.ones((4, 3))))
        assert again == before
        assert store.get_artifact_path(other).is_file()  # the read flushed it
        np.testing.assert_array_equal(store.load_artifact(other).mean_, np.ones(3))
        third = store.save_artifact(StandardScaler().fit(np.zeros((4, 3))))
    assert store.load_artifact(third).mean_.tolist() == [0.0, 0.0, 0.0]
    assert store.count_artifacts() == 3
    report = store.verify()
    assert report.ok, report
