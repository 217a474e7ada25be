"""Shared helpers of the benchmark scripts: stores on each backend, synthetic data, timing.

Scripts print their figures and ratios measured in the same run (the machine is shared, so
absolute numbers drift; ratios much less). Run from the checkout:
`python benchmarks/bench_write.py` (each script has `--help`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # pg_server.py: the throwaway PostgreSQL server

from nirs4all_store import WorkspaceStore  # noqa: E402

BACKENDS = ("duckdb", "sqlite", "postgresql")
DATASETS = tuple(f"dataset_{i}" for i in range(10))
MODEL_CLASSES = ("PLSRegression", "RandomForestRegressor", "SVR", "Ridge", "KNeighborsRegressor")
PARTITIONS = ("train", "val", "test")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def median_time(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of `fn` over `repeat` calls after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn)[0] for _ in range(repeat))


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms" if seconds < 1 else f"{seconds:8.2f} s "


@contextlib.contextmanager
def postgres_server(enabled: bool) -> Iterator[str | None]:
    """A throwaway PostgreSQL server URL (None when disabled or unavailable)."""
    if not enabled:
        yield None
        return
    from pg_server import PostgresUnavailableError, throwaway_postgres

    try:
        with throwaway_postgres() as url:
            yield url
    except PostgresUnavailableError as exc:
        print(f"# PostgreSQL skipped: {exc}")
        yield None


_db_counter = 0


def new_pg_database(server_url: str) -> str:
    global _db_counter
    from pg_server import create_database

    _db_counter += 1
    return create_database(server_url, f"bench_{_db_counter}")


@contextlib.contextmanager
def open_backend(backend: str, pg_url: str | None, **kwargs: Any) -> Iterator[WorkspaceStore]:
    """A fresh store on `backend` in a temporary workspace, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix=f"n4a-bench-{backend}-"))
    url: str | None = None
    if backend == "sqlite":
        url = f"sqlite:///{folder / 'store.sqlite'}"
    elif backend == "postgresql":
        if pg_url is None:
            raise RuntimeError("no PostgreSQL server")
        url = new_pg_database(pg_url)
    store = WorkspaceStore(folder / "ws", url=url, **kwargs)
    try:
        yield store
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)


def make_pipelines(store: WorkspaceStore, run_id: str, n: int) -> list[str]:
    """`n` pipelines of a run, in one transaction (setup, not what is measured)."""
    with store.transaction():
        return [
            store.begin_pipeline(run_id, f"pipeline_{i}", {"i": i}, dataset_name=DATASETS[i % 10])
            for i in range(n)
        ]


def prediction_records(
    pipeline_ids: list[str], folds: int, n_samples: int, seed: int = 0
) -> list[dict[str, Any]]:
    """One record per pipeline x fold x partition with `n_samples`-long y_true/y_pred."""
    rng = np.random.default_rng(seed)
    records = []
    for p, pipeline_id in enumerate(pipeline_ids):
        for fold in range(folds):
            for partition in PARTITIONS:
                y_true = rng.normal(size=n_samples)
                records.append(
                    {
                        "pipeline_id": pipeline_id,
                        "dataset_name": DATASETS[p % 10],
                        "model_name": f"model_{p % 7}",
                        "model_class": MODEL_CLASSES[p % 5],
                        "fold_id": str(fold),
                        "partition": partition,
                        "val_score": float(rng.random()),
                        "test_score": float(rng.random()),
                        "train_score": float(rng.random()),
                        "metric": "rmse",
                        "task_type": "regression",
                        "n_samples": n_samples,
                        "n_features": 700,
                        "scores": {partition: {"rmse": float(rng.random())}},
                        "best_params": {"n_components": p % 20},
                        "preprocessings": "SNV>SG",
                        "y_true": y_true,
                        "y_pred": y_true + rng.normal(scale=0.1, size=n_samples),
                    }
                )
    return records


# -- fast synthetic fills (Arrow on DuckDB, executemany elsewhere), for the read benchmarks --
def synthetic_tables(
    run_id: str, n_predictions: int, n_samples: int, seed: int = 0, folds: int = 5
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(pipelines, predictions, prediction_arrays) Arrow tables built column-wise."""
    rng = np.random.default_rng(seed)
    per_pipeline = folds * len(PARTITIONS)
    n_pipelines = -(-n_predictions // per_pipeline)
    # Random UUID strings like the store's own ids: DuckDB's ART index costs depend on the
    # key distribution (sequential, shared-prefix keys make deletes ~4x slower to commit).
    pipeline_ids = np.array([str(uuid.uuid4()) for _ in range(n_pipelines)], dtype=object)
    now = np.datetime64("2026-01-01T00:00:00", "us")
    pipelines = pa.table(
        {
            "pipeline_id": pa.array(pipeline_ids, pa.string()),
            "run_id": pa.array([run_id] * n_pipelines, pa.string()),
            "name": pa.array(pipeline_ids, pa.string()),
            "dataset_name": pa.array([DATASETS[i % 10] for i in range(n_pipelines)], pa.string()),
            "status": pa.array(["completed"] * n_pipelines, pa.string()),
            "created_at": pa.array(np.full(n_pipelines, now), pa.timestamp("us")),
        }
    )
    idx = np.arange(n_predictions)
    pipe = idx // per_pipeline
    ids = pa.array([str(uuid.uuid4()) for _ in range(n_predictions)], pa.string())
    datasets = np.array(DATASETS, dtype=object)[pipe % 10]
    classes = np.array(MODEL_CLASSES, dtype=object)[pipe % 5]
    predictions = pa.table(
        {
            "prediction_id": ids,
            "pipeline_id": pa.array(pipeline_ids[pipe], pa.string()),
            "dataset_name": pa.array(datasets, pa.string()),
            "model_name": pa.array(classes, pa.string()),
            "model_class": pa.array(classes, pa.string()),
            "fold_id": pa.array(((idx // 3) % folds).astype(str), pa.string()),
            "partition": pa.array(np.array(PARTITIONS, dtype=object)[idx % 3], pa.string()),
            "val_score": pa.array(rng.random(n_predictions), pa.float64()),
            "test_score": pa.array(rng.random(n_predictions), pa.float64()),
            "train_score": pa.array(rng.random(n_predictions), pa.float64()),
            "metric": pa.array(["rmse"] * n_predictions, pa.string()),
            "task_type": pa.array(["regression"] * n_predictions, pa.string()),
            "n_samples": pa.array(np.full(n_predictions, n_samples), pa.int64()),
            "branch_id": pa.array(np.zeros(n_predictions, dtype=np.int64), pa.int64()),
            "exclusion_count": pa.array(np.zeros(n_predictions, dtype=np.int64), pa.int64()),
            "exclusion_rate": pa.array(np.zeros(n_predictions), pa.float64()),
            "preprocessings": pa.array(["SNV"] * n_predictions, pa.string()),
            "created_at": pa.array(
                now + (idx * 1000).astype("timedelta64[us]"), pa.timestamp("us")
            ),
        }
    )
    values = rng.normal(size=n_predictions * n_samples)
    offsets = pa.array(np.arange(0, n_predictions * n_samples + 1, n_samples, dtype=np.int32))
    y = pa.ListArray.from_arrays(offsets, pa.array(values, pa.float64()))
    arrays = pa.table({"prediction_id": ids, "y_true": y, "y_pred": y})
    return pipelines, predictions, arrays


def fill_synthetic(
    store: WorkspaceStore, n_predictions: int, n_samples: int, chunk: int = 100_000
) -> str:
    """Add a completed run with `n_predictions` predictions (+arrays); returns the run id."""
    run_id = store.begin_run(f"synthetic {n_predictions}")
    done = 0
    seed = 0
    while done < n_predictions:
        size = min(chunk, n_predictions - done)
        tables = synthetic_tables(run_id, size, n_samples, seed=seed)
        names = ("pipelines", "predictions", "prediction_arrays")
        insert_tables(store, dict(zip(names, tables, strict=True)))
        done += size
        seed += 1
    return run_id


def insert_tables(store: WorkspaceStore, tables: dict[str, pa.Table]) -> None:
    """Insert Arrow tables as they are (DuckDB: Arrow scan; others: Core executemany)."""
    import sqlalchemy as sa

    from nirs4all_store.models import Base
    from nirs4all_store.types import JSONValue

    with store.transaction() as session:
        conn = session.connection()
        if conn.dialect.name == "duckdb":
            raw = conn.connection.driver_connection
            for name, table in tables.items():
                cols = ", ".join(f'"{c}"' for c in table.column_names)
                raw.register("_bench_src", table)
                raw.execute(f"INSERT INTO {name} ({cols}) SELECT {cols} FROM _bench_src")
                raw.unregister("_bench_src")
            return
        for name, table in tables.items():
            target = Base.metadata.tables[name]
            json_columns = [c.name for c in target.columns if isinstance(c.type, JSONValue)]
            rows = table.to_pylist()
            for row in rows:
                for key in ("y_true", "y_pred"):
                    if row.get(key) is not None:
                        row[key] = np.asarray(row[key])
                for key in json_columns:
                    if isinstance(row.get(key), str):
                        row[key] = json.loads(row[key])
            for start in range(0, len(rows), 20_000):
                conn.execute(sa.insert(target), rows[start : start + 20_000])
