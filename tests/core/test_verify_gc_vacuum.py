"""verify reports and repairs, gc's grace period, and vacuum: every row kept, the file really
shrinks, and a crash at any point of a DuckDB compaction leaves a valid workspace."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from nirs4all_store import StoreError, VerifyReport, WorkspaceLockedError, WorkspaceStore
from nirs4all_store.db.vacuum import compact_duckdb_file
from nirs4all_store.models import TABLES, Artifact


def populate(
    store: WorkspaceStore, n_runs: int, n_preds: int = 5, n_values: int = 2000
) -> list[str]:
    """Runs with a pipeline, a chain on a fitted-model-like artifact, predictions + arrays."""
    rng = np.random.default_rng(0)
    runs = []
    for r in range(n_runs):
        run_id = store.begin_run(f"run{r}")
        pipe = store.begin_pipeline(run_id, "p", dataset_name="ds")
        artifact = store.save_artifact({"coef": rng.normal(size=50)}, "PLS", "model")
        chain_id = store.save_chain(pipe, [{"i": 0}], 0, "PLS", fold_artifacts={"0": artifact})
        y = rng.normal(size=n_values)
        store.save_predictions(
            [
                {
                    "pipeline_id": pipe,
                    "chain_id": chain_id,
                    "dataset_name": "ds",
                    "model_name": "pls",
                    "model_class": "PLS",
                    "fold_id": str(f),
                    "partition": "val",
                    "metric": "rmse",
                    "task_type": "regression",
                    "val_score": float(f),
                    "y_true": y,
                    "y_pred": y + f,
                }
                for f in range(n_preds)
            ]
        )
        store.log_step(pipe, 0, "PLS", "fit")
        runs.append(run_id)
    return runs


def row_counts(store: WorkspaceStore) -> dict[str, int]:
    with store.transaction() as session:
        return {
            m.__tablename__: session.execute(
                sa.select(sa.func.count()).select_from(m.__table__)
            ).scalar_one()
            for m in TABLES
        }


def snapshot(store: WorkspaceStore) -> dict[str, object]:
    """Everything a vacuum must keep: counts, ids, one prediction's arrays."""
    preds = store.query_predictions(limit=None).sort_by("prediction_id")
    first = store.get_prediction(preds.column("prediction_id")[0].as_py(), load_arrays=True)
    assert first is not None
    return {
        "counts": row_counts(store),
        "runs": sorted(store.list_runs(limit=None).column("run_id").to_pylist()),
        "preds": preds.column("prediction_id").to_pylist(),
        "y_pred": first["y_pred"].tolist(),
    }


# -- verify --------------------------------------------------------------------------------
def test_report_ok_semantics() -> None:
    assert VerifyReport().ok
    assert not VerifyReport(orphan_files=["ab/x.pkl"]).ok
    repaired = VerifyReport(orphan_files=["ab/x.pkl"], removed_orphans=["ab/x.pkl"])
    assert repaired.ok and repaired.problems()["orphan_files"] == []
    assert not VerifyReport(ref_count_mismatches=[("a", 1, 0)]).ok
    assert not VerifyReport(unknown_artifact_refs=[("c", "a")]).ok


def test_old_orphan_removed_with_default_grace(store: WorkspaceStore) -> None:
    keep = store.save_artifact(np.arange(3.0))
    shard = store.get_artifact_path(keep).parent
    old, young = shard / ("0" * 64 + ".joblib"), shard / ("1" * 64 + ".joblib")
    old.write_bytes(b"left by a crash long ago")
    young.write_bytes(b"maybe in flight")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    report = store.verify(repair=True)
    assert report.removed_orphans == [old.relative_to(store.artifacts_path).as_posix()]
    assert not old.exists() and young.exists()
    assert not report.ok  # the young orphan is still reported
    assert store.load_artifact(keep).shape == (3,)


def test_gc_grace_is_measured_from_the_save(store: WorkspaceStore) -> None:
    aged = store.save_artifact(np.arange(4.0))
    fresh = store.save_artifact(np.arange(5.0))
    table = Artifact.__table__
    two_hours_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    with store.transaction() as session:  # as if saved two hours ago
        session.execute(
            sa.update(table)
            .where(table.c.artifact_id == aged)
            .values(created_at=two_hours_ago, saved_at=two_hours_ago)
        )
    assert store.gc_artifacts(grace_seconds=3600) == 1
    assert store.get_artifact(aged) is None and store.get_artifact(fresh) is not None
    assert store.gc_artifacts(grace_seconds=3 * 3600) == 0
    assert store.verify().ok


def test_repair_skips_counts_changed_since_the_scan(store: WorkspaceStore) -> None:
    """A chain saved between verify's snapshot and its repair must not be undone."""
    from nirs4all_store.repositories import ArtifactRepository

    a = store.save_artifact(np.arange(6.0))
    b = store.save_artifact(np.arange(7.0))
    run_id = store.begin_run("r")
    pipe = store.begin_pipeline(run_id, "p", dataset_name="ds")
    table = Artifact.__table__
    with store.transaction() as session:  # both counts wrong: 5 stored, 0 references
        session.execute(sa.update(table).values(ref_count=5))
    stale = store.verify().ref_count_mismatches
    assert sorted(stale) == sorted([(a, 5, 0), (b, 5, 0)])
    store.save_chain(pipe, [], 0, "M", fold_artifacts={"0": a})  # a: 5 -> 6 meanwhile
    with store.transaction() as session:
        assert ArtifactRepository(session).repair_counts(stale) == 1
    assert store.get_artifact(b)["ref_count"] == 0  # type: ignore[index]
    assert store.get_artifact(a)["ref_count"] == 6  # type: ignore[index]  # left for next pass
    fixed = store.verify(repair=True)
    assert fixed.repaired_ref_counts == 1 and store.verify().ok
    assert store.get_artifact(a)["ref_count"] == 1  # type: ignore[index]


# -- vacuum --------------------------------------------------------------------------------
def test_vacuum_keeps_every_row_and_shrinks(open_store: Callable[..., WorkspaceStore]) -> None:
    store = open_store()
    runs = populate(store, n_runs=20)
    for run_id in runs[:18]:
        store.delete_run(run_id)
    before = snapshot(store)
    result = store.vacuum()
    assert set(result) == {"before_bytes", "after_bytes", "seconds"}
    if store.engine.dialect.name != "postgresql":
        assert result["after_bytes"] < result["before_bytes"], result
    else:
        assert result["before_bytes"] is None and result["after_bytes"] is None
    assert snapshot(store) == before  # the same store keeps working after the swap
    assert store.verify().ok
    # Writes after vacuum land in the compacted database and survive a reopen.
    more = populate(store, n_runs=1)
    store.close()
    again = open_store()
    assert sorted(again.list_runs(limit=None).column("run_id").to_pylist()) == sorted(
        runs[18:] + more
    )
    for chain_run in runs[18:]:
        (pipe,) = again.list_pipelines(run_id=chain_run).column("pipeline_id").to_pylist()
        (chain_id,) = again.get_chains_for_pipeline(pipe).column("chain_id").to_pylist()
        chain = again.get_chain(chain_id)
        assert chain is not None
        again.load_artifact(chain["fold_artifacts"]["0"])
    assert again.verify().ok


def test_duckdb_vacuum_keeps_constraints_and_schema(tmp_path: Path) -> None:
    with WorkspaceStore(tmp_path / "ws") as store:
        run_id = populate(store, n_runs=2)[0]
        store.vacuum()
        with pytest.raises(StoreError), store.transaction() as session:  # primary key kept
            table = TABLES[0].__table__
            session.execute(sa.insert(table).values(run_id=run_id, name="dup", status="running"))
        with store.transaction() as session:  # views survive
            assert session.execute(sa.text("SELECT count(*) FROM v_chain_summary")).scalar() == 2
    with WorkspaceStore(tmp_path / "ws") as store:  # schema version recognised on reopen
        assert store.list_runs().num_rows == 2


def test_vacuum_refuses_while_another_store_holds_the_file(tmp_path: Path) -> None:
    with WorkspaceStore(tmp_path / "ws") as first, WorkspaceStore(tmp_path / "ws") as second:
        run_id = first.begin_run("r")
        with pytest.raises(WorkspaceLockedError, match="Close every other WorkspaceStore"):
            first.vacuum()
        assert second.get_run(run_id) is not None and first.get_run(run_id) is not None
        assert not (tmp_path / "ws" / "store.duckdb.vacuum").exists()


def test_stale_vacuum_file_is_harmless(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    with WorkspaceStore(ws) as store:
        populate(store, n_runs=2)
        before = snapshot(store)
    stale = ws / "store.duckdb.vacuum"
    stale.write_bytes(b"\x00" * 4096)  # a half-written copy from a crashed vacuum
    (ws / "store.duckdb.vacuum.wal").write_bytes(b"junk")
    with WorkspaceStore(ws) as store:
        assert snapshot(store) == before
        store.vacuum()
        assert snapshot(store) == before
    assert not stale.exists() and not (ws / "store.duckdb.vacuum.wal").exists()


WAL_WRITER = r"""
import os, sys
from nirs4all_store import WorkspaceStore
store = WorkspaceStore(sys.argv[1])
for i in range(30):
    store.begin_run(f"after-checkpoint-{i}")
os.kill(os.getpid(), 9)  # die with the changes only in the WAL
"""


def test_vacuum_after_crash_with_pending_wal(tmp_path: Path) -> None:
    """Regression: a WAL left beside the swapped-in file made the workspace unopenable."""
    ws = tmp_path / "ws"
    with WorkspaceStore(ws) as store:
        populate(store, n_runs=2)
    proc = subprocess.run([sys.executable, "-c", WAL_WRITER, str(ws)], check=False)
    assert proc.returncode == -signal.SIGKILL
    wal = ws / "store.duckdb.wal"
    assert wal.exists() and wal.stat().st_size > 0
    compact_duckdb_file(ws / "store.duckdb")  # what vacuum does once the engine is closed
    assert not wal.exists()
    with WorkspaceStore(ws) as store:
        assert store.list_runs(limit=None).num_rows == 32
        assert store.verify().ok


VACUUM_CHILD = r"""
import sys
from nirs4all_store import WorkspaceStore
store = WorkspaceStore(sys.argv[1])
store.list_runs()
print("go", flush=True)
store.vacuum()
print("done", flush=True)
store.close()
"""


@pytest.mark.slow
def test_kill_during_vacuum_leaves_a_valid_workspace(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    with WorkspaceStore(ws) as store:
        runs = populate(store, n_runs=30, n_values=4000)
        for run_id in runs[:20]:
            store.delete_run(run_id)
        before = snapshot(store)
        started = time.perf_counter()
        store.vacuum()
        duration = time.perf_counter() - started
    rng = random.Random(7)
    outcomes = []
    for _ in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", VACUUM_CHILD, str(ws)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "go"
        time.sleep(rng.uniform(0.0, duration * 1.2))
        child.send_signal(signal.SIGKILL)
        outcomes.append(child.stdout.read().strip() or "killed")
        child.wait()
        with WorkspaceStore(ws) as store:
            assert snapshot(store) == before
            assert store.verify().ok
    with WorkspaceStore(ws) as store:
        store.vacuum()
        assert snapshot(store) == before
    assert not (ws / "store.duckdb.vacuum").exists()
    assert "killed" in outcomes, outcomes


def test_the_last_verify_is_recorded_for_later_sessions(
    open_store: Callable[..., WorkspaceStore],
) -> None:
    store = open_store()
    assert store.last_verify() is None
    store.verify()
    first = store.last_verify()
    assert first is not None and first["ok"] is True and first["repair"] is False
    assert first["problems"] == {}
    store.verify(repair=True)
    store.close()
    reader = open_store(read_only=True)
    again = reader.last_verify()
    assert again is not None and again["repair"] is True
    assert again["checked_at"] >= first["checked_at"]
    reader.verify()  # a read-only handle records nothing
    assert reader.last_verify() == again
