"""Single row calls on DuckDB as one autocommitted statement each (repositories.direct_rows).

What the unit of work guaranteed must still hold on that path: a row is written only with
its parents, errors are the usual ones (same type and words), a parent deleted by this or
another process is not trusted afterwards, re-saves and replacements behave as before, and
every call has committed when it returns (a SIGKILL loses nothing returned). Real DuckDB
files, real processes, real threads.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from nirs4all_store import WorkspaceStore
from nirs4all_store.artifacts import files
from nirs4all_store.errors import ConstraintError
from nirs4all_store.facade import runs as run_calls
from nirs4all_store.repositories import ArtifactRepository

MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[WorkspaceStore]:
    store = WorkspaceStore(tmp_path / "ws")
    yield store
    store.close()


def statements(store: WorkspaceStore) -> list[str]:
    """The SQL the store runs through SQLAlchemy from now on (the direct path runs none)."""
    seen: list[str] = []

    def _note(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        seen.append(statement.split()[0])

    sa.event.listen(store.engine, "before_cursor_execute", _note)
    return seen


def stored_arrays(store: WorkspaceStore) -> int:
    with store.transaction() as session:
        return int(session.execute(sa.text("SELECT count(*) FROM prediction_arrays")).scalar_one())


def record_one(store: WorkspaceStore) -> dict[str, str]:
    run_id = store.begin_run("r")
    pipeline_id = store.begin_pipeline(run_id, "p", dataset_name="d")
    artifact_id = store.save_artifact({"w": [1.0, 2.0]}, "Scaler", "transformer")
    chain_id = store.save_chain(
        pipeline_id, [{"step_idx": 0}], 0, "PLS", "SNV", "per_fold", {"fold_0": artifact_id}
    )
    return {"run": run_id, "pipeline": pipeline_id, "artifact": artifact_id, "chain": chain_id}


def prediction(store: WorkspaceStore, ids: dict[str, str], fold: str = "0", **kw: Any) -> str:
    return store.save_prediction(
        ids["pipeline"], kw.pop("chain_id", ids["chain"]), "d", "PLS", "PLSRegression", fold,
        "val", 0.5, metric="rmse", task_type="regression", scores={"val": {"rmse": 0.5}}, **kw,
    )  # fmt: skip


def test_row_calls_run_no_unit_of_work_and_store_what_was_given(duck: WorkspaceStore) -> None:
    ids = record_one(duck)
    seen = statements(duck)
    y_true, y_pred = np.linspace(0, 1, 50), np.linspace(1, 2, 50)
    pid = prediction(duck, ids)
    duck.save_prediction_arrays(pid, y_true, y_pred, sample_indices=np.arange(50))
    log_id = duck.log_step(ids["pipeline"], 0, "Scaler", "fit", 2.5, details={"k": [1, 2]})
    second = duck.begin_pipeline(ids["run"], "p2", dataset_name="d")
    artifact = duck.save_artifact([3, 4], "Model", "model")
    chain = duck.save_chain(second, [], 0, "PLS", "", "per_fold", {"fold_0": artifact})
    duck.complete_pipeline(second, 0.1, 0.2, "rmse", 12.0)
    assert seen == []  # none of those calls went through a Session
    stored = duck.get_prediction(pid, load_arrays=True)
    assert stored is not None and stored["scores"] == {"val": {"rmse": 0.5}}
    np.testing.assert_array_equal(stored["y_true"], y_true)
    np.testing.assert_array_equal(stored["y_pred"], y_pred)
    np.testing.assert_array_equal(stored["sample_indices"], np.arange(50))
    log = duck.get_pipeline_log(ids["pipeline"]).to_pylist()
    assert [(r["log_id"], json.loads(r["details"]), r["duration_ms"]) for r in log] == [
        (log_id, {"k": [1, 2]}, 2.5)
    ]
    done = duck.get_pipeline(second)
    assert done is not None and (done["status"], done["best_val"]) == ("completed", 0.1)
    assert duck.get_chain(chain)["pipeline_id"] == second  # type: ignore[index]
    assert duck.get_artifact(artifact)["ref_count"] == 1  # type: ignore[index]
    assert duck.load_artifact(artifact) == [3, 4]


def test_unknown_parents_fail_as_on_every_backend_and_write_nothing(
    store: WorkspaceStore,
) -> None:
    """Run on every backend: the direct path (DuckDB) raises what the others raise."""
    duck = store
    ids = record_one(duck)
    prediction(duck, ids)  # parents now known to this store
    before = duck.status()["counts"]
    with pytest.raises(KeyError, match=f"unknown pipeline_id '{MISSING}'"):
        duck.log_step(MISSING, 0, "S", "fit")
    with pytest.raises(KeyError, match=f"unknown chain_id '{MISSING}'"):
        prediction(duck, ids, fold="1", chain_id=MISSING)
    with pytest.raises(KeyError, match=f"unknown prediction_id '{MISSING}'"):
        duck.save_prediction_arrays(MISSING, np.ones(3), np.ones(3))
    with pytest.raises(KeyError, match=f"unknown run_id '{MISSING}'"):
        duck.begin_pipeline(MISSING, "p", dataset_name="d")
    with pytest.raises(KeyError, match=f"unknown pipeline_id '{MISSING}'"):
        duck.complete_pipeline(MISSING, 0.1)
    with pytest.raises(KeyError, match="unknown artifact id"):
        duck.save_chain(ids["pipeline"], [], 0, "PLS", "", "per_fold", {"fold_0": MISSING})
    with pytest.raises(ConstraintError, match="save_prediction"):
        prediction(duck, ids)  # the same natural key again
    assert duck.status()["counts"] == before
    assert duck.get_artifact(ids["artifact"])["ref_count"] == 1  # type: ignore[index]


def test_arrays_saved_twice_are_replaced(duck: WorkspaceStore) -> None:
    ids = record_one(duck)
    pid = prediction(duck, ids)
    duck.save_prediction_arrays(pid, np.zeros(4), np.zeros(4))
    duck.save_prediction_arrays(pid, np.ones(3), np.full(3, 2.0))
    stored = duck.get_prediction(pid, load_arrays=True)
    assert stored is not None
    np.testing.assert_array_equal(stored["y_pred"], np.full(3, 2.0))
    assert stored_arrays(duck) == 1


def test_a_parent_deleted_in_this_process_is_looked_up_again(
    duck: WorkspaceStore, tmp_path: Path
) -> None:
    ids = record_one(duck)
    duck.log_step(ids["pipeline"], 0, "S", "fit")  # the pipeline is now known
    other = WorkspaceStore(tmp_path / "ws")  # another store on the same file
    try:
        other.delete_run(ids["run"])
    finally:
        other.close()
    with pytest.raises(KeyError, match="unknown pipeline_id"):
        duck.log_step(ids["pipeline"], 1, "S", "fit")
    fresh = record_one(duck)
    pid = prediction(duck, fresh)
    duck.delete_prediction(pid)  # through the store itself
    with pytest.raises(KeyError, match="unknown prediction_id"):
        duck.save_prediction_arrays(pid, np.ones(2), np.ones(2))
    assert duck.status()["counts"]["logs"] == 0


def test_a_parent_deleted_by_another_process_is_looked_up_again(
    duck: WorkspaceStore, tmp_path: Path
) -> None:
    ids = record_one(duck)
    duck.log_step(ids["pipeline"], 0, "S", "fit")  # known while this process holds the file
    code = f"""
        from nirs4all_store import WorkspaceStore
        with WorkspaceStore({str(tmp_path / "ws")!r}, lock_timeout=30) as s:
            print(s.delete_run({ids["run"]!r}), flush=True)
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 0  # it could only open the file once this process let it go
    with pytest.raises(KeyError, match="unknown pipeline_id"):
        duck.log_step(ids["pipeline"], 1, "S", "fit")
    assert duck.get_pipeline(ids["pipeline"]) is None


def test_resaved_bytes_keep_their_row_and_foreign_ids_are_honoured(
    duck: WorkspaceStore,
) -> None:
    first = duck.save_artifact({"a": 1}, "S", "t")
    assert duck.save_artifact({"a": 1}, "S", "t") == first
    assert duck.count_artifacts() == 1
    # A row registered under an id not derived from its bytes (as nirs4all's own ids are):
    # saving those bytes must give that row's id, not a second row.
    blob = files.serialize({"b": 2}, "joblib")
    digest, relpath = duck.vault.files.put(blob, "joblib")
    assert digest == hashlib.sha256(blob).hexdigest()
    with duck.transaction() as session:
        ArtifactRepository(session).insert_many(
            [
                {
                    "artifact_id": "legacy-artifact-1",
                    "artifact_path": relpath,
                    "content_hash": digest,
                    "operator_class": "S",
                    "artifact_type": "t",
                    "format": "joblib",
                    "size_bytes": len(blob),
                }
            ]
        )
    assert duck.save_artifact({"b": 2}, "S", "t") == "legacy-artifact-1"
    assert duck.count_artifacts() == 2
    assert duck.load_artifact("legacy-artifact-1") == {"b": 2}


def test_threads_recording_at_once_lose_nothing(duck: WorkspaceStore) -> None:
    ids = record_one(duck)
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            pipeline = duck.begin_pipeline(ids["run"], f"t{k}", dataset_name="d")
            chain = duck.save_chain(pipeline, [], 0, "PLS", "", "per_fold", {"f": ids["artifact"]})
            for fold in range(10):
                pid = prediction(duck, {"pipeline": pipeline, "chain": chain}, fold=str(fold))
                duck.save_prediction_arrays(pid, np.full(5, k), np.full(5, fold))
                duck.log_step(pipeline, fold, "S", "fit")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    counts = duck.status()["counts"]
    assert (counts["predictions"], stored_arrays(duck), counts["logs"]) == (40, 40, 40)
    assert duck.get_artifact(ids["artifact"])["ref_count"] == 5  # type: ignore[index]


def test_sigkill_loses_no_call_that_returned(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    code = f"""
        import numpy as np
        from nirs4all_store import WorkspaceStore
        s = WorkspaceStore({str(workspace)!r})
        run_id = s.begin_run("r")
        pipeline = s.begin_pipeline(run_id, "p", dataset_name="d")
        chain = s.save_chain(pipeline, [], 0, "PLS")
        for i in range(100000):
            pid = s.save_prediction(pipeline, chain, "d", "PLS", "PLS", str(i), "val",
                                    metric="rmse", task_type="regression")
            s.save_prediction_arrays(pid, np.ones(20), np.full(20, i))
            s.log_step(pipeline, i, "S", "fit")
            print(i, flush=True)
    """
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    last = -1
    deadline = time.monotonic() + 60
    while last < 60 and time.monotonic() < deadline:
        last = int(child.stdout.readline())
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert last >= 60
    with WorkspaceStore(workspace) as store:
        counts = store.status()["counts"]
        # every call that returned (and was printed) is there; at most the one in flight more
        assert last + 1 <= counts["logs"] <= last + 2
        assert counts["predictions"] >= last + 1 and stored_arrays(store) >= last + 1
        rows = store.query_predictions(fold_id=str(last)).to_pylist()
        stored = store.get_prediction(rows[0]["prediction_id"], load_arrays=True)
        assert stored is not None and stored["y_pred"][0] == last


def test_heartbeat_is_refreshed_once_per_interval(
    duck: WorkspaceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = duck.begin_run("r")
    beat = duck.get_run(run_id)["heartbeat_at"]  # type: ignore[index]
    pipeline = duck.begin_pipeline(run_id, "p", dataset_name="d")
    duck.complete_pipeline(pipeline, 0.1)
    assert duck.get_run(run_id)["heartbeat_at"] == beat  # type: ignore[index]
    monkeypatch.setattr(run_calls, "HEARTBEAT_EVERY_S", 0.0)
    time.sleep(0.01)
    duck.begin_pipeline(run_id, "p2", dataset_name="d")
    later = duck.get_run(run_id)["heartbeat_at"]  # type: ignore[index]
    assert later > beat
    time.sleep(0.01)
    duck.complete_pipeline(pipeline, 0.2)
    assert duck.get_run(run_id)["heartbeat_at"] > later  # type: ignore[index]
