"""Concurrent writers: threads sharing one WorkspaceStore, processes sharing one database.

Threads run on every backend (the `store` fixture). Processes run on SQLite and PostgreSQL,
the backends meant for parallel writers (one DuckDB file admits one writing process:
tests/test_locking.py). Afterwards every row must be there, every artifact reference count
exact and `verify()` clean: a lost update or a skipped write fails the test.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from conftest import BACKENDS

from nirs4all_store import WorkspaceStore

N_THREADS = 8
PIPELINES_PER_THREAD = 4
FOLDS = ("0", "1")
PARTITIONS = ("train", "val", "test")
SHARED_OBJECT = {"scaler": "shared", "mean": [0.5, 1.5, 2.5]}


def prediction_records(
    pipeline_id: str, chain_id: str, dataset: str, seed: int
) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    records = []
    for fold in FOLDS:
        for partition in PARTITIONS:
            y_true = rng.normal(size=30)
            records.append(
                {
                    "pipeline_id": pipeline_id,
                    "chain_id": chain_id,
                    "dataset_name": dataset,
                    "model_name": "PLS-10",
                    "model_class": "PLSRegression",
                    "fold_id": fold,
                    "partition": partition,
                    "val_score": float(rng.random()),
                    "test_score": float(rng.random()),
                    "metric": "rmse",
                    "task_type": "regression",
                    "y_true": y_true,
                    "y_pred": y_true + rng.normal(scale=0.1, size=30),
                    "sample_indices": np.arange(30),
                }
            )
    return records


def count(store: WorkspaceStore, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def artifact_counts(store: WorkspaceStore) -> dict[str, int]:
    table = store.list_artifacts()
    return dict(
        zip(
            table.column("artifact_id").to_pylist(),
            table.column("ref_count").to_pylist(),
            strict=True,
        )
    )


def artifact_files(store: WorkspaceStore) -> list[Path]:
    return [
        p
        for p in store.artifacts_path.rglob("*")
        if p.is_file() and p.parent != store.artifacts_path and not p.name.startswith(".")
    ]


def thread_worker(
    store: WorkspaceStore, run_id: str, t: int, barrier: threading.Barrier
) -> dict[str, Any]:
    """One thread's pipelines: writes of every kind interleaved with reads."""
    barrier.wait()
    shared = store.save_artifact(SHARED_OBJECT, operator_class="StandardScaler", format="pickle")
    written: dict[str, Any] = {"pipelines": [], "predictions": [], "shared": shared, "own": []}
    for i in range(PIPELINES_PER_THREAD):
        pipeline_id = store.begin_pipeline(
            run_id, f"t{t}-p{i}", {"n_components": i}, dataset_name=f"ds{t % 2}"
        )
        own = store.save_artifact(
            {"thread": t, "pipeline": i}, operator_class="PLSRegression", format="pickle"
        )
        chain_id = store.save_chain(
            pipeline_id,
            steps=[{"step": 0, "class": "StandardScaler"}, {"step": 1, "class": "PLSRegression"}],
            model_step_idx=1,
            model_class="PLSRegression",
            fold_artifacts={"0": own, "1": own},
            shared_artifacts={"0": shared},
        )
        ids = store.save_predictions(
            prediction_records(pipeline_id, chain_id, f"ds{t % 2}", seed=t * 100 + i)
        )
        store.log_step(pipeline_id, 1, "PLSRegression", "fit", duration_ms=1.0)
        store.complete_pipeline(pipeline_id, best_val=0.1, metric="rmse")
        # Reads while other threads write.
        assert store.get_prediction(ids[0], load_arrays=True)["y_true"].shape == (30,)
        assert store.top_predictions(3).num_rows <= 3
        assert store.list_pipelines(run_id=run_id).num_rows >= i + 1
        assert store.get_chain(chain_id)["pipeline_id"] == pipeline_id
        written["pipelines"].append(pipeline_id)
        written["predictions"].extend(ids)
        written["own"].append(own)
    return written


def test_threads_share_one_store(store: WorkspaceStore) -> None:
    run_id = store.begin_run("threads")
    barrier = threading.Barrier(N_THREADS)
    with ThreadPoolExecutor(N_THREADS) as pool:
        futures = [pool.submit(thread_worker, store, run_id, t, barrier) for t in range(N_THREADS)]
        results = [f.result() for f in futures]

    n_pipelines = N_THREADS * PIPELINES_PER_THREAD
    n_predictions = n_pipelines * len(FOLDS) * len(PARTITIONS)
    pipelines = store.list_pipelines(run_id=run_id)
    assert pipelines.num_rows == n_pipelines
    assert set(pipelines.column("status").to_pylist()) == {"completed"}
    assert sorted(pipelines.column("pipeline_id").to_pylist()) == sorted(
        p for r in results for p in r["pipelines"]
    )
    stored = store.query_predictions(run_id=run_id)
    assert stored.num_rows == n_predictions
    assert sorted(stored.column("prediction_id").to_pylist()) == sorted(
        p for r in results for p in r["predictions"]
    )
    assert count(store, "prediction_arrays") == n_predictions
    assert count(store, "chains") == n_pipelines
    assert count(store, "logs") == n_pipelines

    shared_ids = {r["shared"] for r in results}
    assert len(shared_ids) == 1, "identical bytes must map to one artifact id"
    (shared,) = shared_ids
    counts = artifact_counts(store)
    assert len(counts) == 1 + n_pipelines
    assert counts[shared] == n_pipelines
    assert all(counts[own] == 1 for r in results for own in r["own"])
    assert len(artifact_files(store)) == 1 + n_pipelines
    report = store.verify()
    assert report.ok, report.problems()


def test_threads_conflicting_reference_updates_are_exact(store: WorkspaceStore) -> None:
    """8 threads take and release references on one artifact: every update lands once."""
    run_id = store.begin_run("conflicts")
    shared = store.save_artifact(SHARED_OBJECT, format="pickle")
    pipelines = [store.begin_pipeline(run_id, f"p{t}", dataset_name="ds") for t in range(N_THREADS)]
    barrier = threading.Barrier(N_THREADS)

    def work(t: int) -> list[str]:
        barrier.wait()
        return [
            store.save_chain(
                pipelines[t], [{"i": i}], 0, "PLSRegression", shared_artifacts={"s": shared}
            )
            for i in range(5)
        ]

    with ThreadPoolExecutor(N_THREADS) as pool:
        chains = [c for chunk in pool.map(work, range(N_THREADS)) for c in chunk]
    assert len(set(chains)) == N_THREADS * 5
    assert artifact_counts(store)[shared] == N_THREADS * 5

    # Releases in parallel: failing half of the pipelines drops their chains' references.
    barrier = threading.Barrier(N_THREADS // 2)

    def fail(t: int) -> None:
        barrier.wait()
        store.fail_pipeline(pipelines[t], "stopped")

    with ThreadPoolExecutor(N_THREADS // 2) as pool:
        list(pool.map(fail, range(N_THREADS // 2)))
    assert artifact_counts(store)[shared] == (N_THREADS // 2) * 5
    assert count(store, "chains") == (N_THREADS // 2) * 5
    report = store.verify()
    assert report.ok, report.problems()


# -- processes --------------------------------------------------------------------------------
N_PROCESSES = 4
PIPELINES_PER_PROCESS = 25
PREDICTIONS_PER_PIPELINE = 5

PROCESS_WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    from nirs4all_store import WorkspaceStore

    workspace, url, run_id, worker, n, go = sys.argv[1:7]
    worker, n = int(worker), int(n)
    while not Path(go).exists():
        time.sleep(0.01)
    with WorkspaceStore(workspace, url=url) as store:
        for i in range(n):
            name = f"w{worker}-p{i}"
            pipeline_id = store.begin_pipeline(run_id, name, {"i": i}, dataset_name="ds")
            # The same bytes from every process at about the same time: one row, one file.
            common = store.save_artifact({"common": i, "values": list(range(50))}, format="pickle")
            own = store.save_artifact({"worker": worker, "pipeline": i}, format="pickle")
            chain_id = store.save_chain(
                pipeline_id, [{"class": "PLSRegression"}], 0, "PLSRegression",
                fold_artifacts={"0": own}, shared_artifacts={"common": common},
            )
            rng = np.random.default_rng(worker * 1000 + i)
            records = [
                {
                    "pipeline_id": pipeline_id, "chain_id": chain_id, "dataset_name": "ds",
                    "model_name": "PLS", "model_class": "PLSRegression", "fold_id": str(f),
                    "partition": "val", "val_score": float(rng.random()), "metric": "rmse",
                    "task_type": "regression", "y_true": rng.normal(size=40),
                    "y_pred": rng.normal(size=40),
                }
                for f in range(int(sys.argv[7]))
            ]
            store.save_predictions(records)
            store.complete_pipeline(pipeline_id, best_val=0.1, metric="rmse")
    print("done", flush=True)
    """
)


@pytest.mark.parametrize("backend", [b for b in ("sqlite", "postgresql") if b in BACKENDS])
def test_processes_write_one_database(
    backend: str,
    open_store: Callable[..., WorkspaceStore],
    workspace: Path,
    database_url: str,
    tmp_path: Path,
) -> None:
    store = open_store()
    run_id = store.begin_run("processes")
    script = tmp_path / "worker.py"
    script.write_text(PROCESS_WORKER)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(workspace),
                database_url,
                run_id,
                str(w),
                str(PIPELINES_PER_PROCESS),
                str(go),
                str(PREDICTIONS_PER_PIPELINE),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(N_PROCESSES)
    ]
    go.touch()
    failures = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0 or out.strip() != "done":
            failures.append(err[-3000:])
    assert not failures, failures

    n_pipelines = N_PROCESSES * PIPELINES_PER_PROCESS
    pipelines = store.list_pipelines(run_id=run_id)
    assert pipelines.num_rows == n_pipelines
    assert set(pipelines.column("status").to_pylist()) == {"completed"}
    assert sorted(pipelines.column("name").to_pylist()) == sorted(
        f"w{w}-p{i}" for w in range(N_PROCESSES) for i in range(PIPELINES_PER_PROCESS)
    )
    n_predictions = n_pipelines * PREDICTIONS_PER_PIPELINE
    assert store.query_predictions(run_id=run_id).num_rows == n_predictions
    assert count(store, "prediction_arrays") == n_predictions
    assert count(store, "chains") == n_pipelines

    counts = artifact_counts(store)
    # 25 contents saved by all 4 processes + one own artifact per pipeline.
    assert len(counts) == PIPELINES_PER_PROCESS + n_pipelines
    assert sorted(counts.values()) == [1] * n_pipelines + [N_PROCESSES] * PIPELINES_PER_PROCESS
    files = artifact_files(store)
    assert len(files) == len(counts)
    assert len({f.name for f in files}) == len(files)
    report = store.verify()
    assert report.ok, report.problems()
