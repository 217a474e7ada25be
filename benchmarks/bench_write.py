"""Write benchmark: `save_predictions` of 7,500 and 75,000 predictions (200-sample arrays).

Per backend, and a hand-written baseline in the same run: the same rows turned into Arrow
tables and inserted with raw DuckDB (`INSERT INTO t SELECT * FROM arrow`, one transaction)
into a file with the same schema. Prints seconds, predictions/s and store/baseline.
Target: DuckDB within 1.5x of the baseline.

    python benchmarks/bench_write.py [--sizes 7500,75000] [--backends duckdb,sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from _common import (
    BACKENDS,
    WorkspaceStore,
    fmt_s,
    make_pipelines,
    open_backend,
    postgres_server,
    prediction_records,
    timed,
)

from nirs4all_store.repositories.predictions import NATURAL_KEY_SQL

N_SAMPLES = 200
FOLDS = 5
BATCH = 7_500  # one save_predictions call per 500 pipelines x 5 folds x 3 partitions


def store_write(store: WorkspaceStore, n: int) -> float:
    run_id = store.begin_run(f"write {n}")
    pipelines = make_pipelines(store, run_id, n // (FOLDS * 3))
    records = prediction_records(pipelines, FOLDS, N_SAMPLES)
    seconds = 0.0
    for start in range(0, len(records), BATCH):
        batch = records[start : start + BATCH]
        seconds += timed(lambda batch=batch: store.save_predictions(batch))[0]
    return seconds


# -- the hand-written baseline ------------------------------------------------------------------
def _list_column(arrays: Sequence[np.ndarray]) -> pa.Array:
    lengths = np.fromiter((len(a) for a in arrays), dtype=np.int32, count=len(arrays))
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(arrays)))


def baseline_tables(records: Sequence[dict[str, Any]]) -> tuple[pa.Table, pa.Table]:
    """What a hand-written writer does: the same rows column-wise, no validation."""
    ids = [str(uuid.uuid4()) for _ in records]
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    text = ("pipeline_id", "dataset_name", "model_name", "model_class", "fold_id", "partition")
    text += ("metric", "task_type", "preprocessings")
    columns: dict[str, Any] = {"prediction_id": pa.array(ids, pa.string())}
    for name in text:
        columns[name] = pa.array([r[name] for r in records], pa.string())
    for name in ("val_score", "test_score", "train_score"):
        columns[name] = pa.array([r[name] for r in records], pa.float64())
    for name in ("n_samples", "n_features"):
        columns[name] = pa.array([r[name] for r in records], pa.int64())
    for name in ("scores", "best_params"):
        columns[name] = pa.array([json.dumps(r[name]) for r in records], pa.string())
    columns["chain_id"] = pa.array([r.get("chain_id") for r in records], pa.string())
    columns["branch_id"] = pa.array([r.get("branch_id") for r in records], pa.int64())
    columns["created_at"] = pa.array([now] * len(records), pa.timestamp("us"))
    arrays = pa.table(
        {
            "prediction_id": pa.array(ids, pa.string()),
            "y_true": _list_column([r["y_true"] for r in records]),
            "y_pred": _list_column([r["y_pred"] for r in records]),
        }
    )
    return pa.table(columns), arrays


def baseline_write(n: int) -> float:
    folder = Path(tempfile.mkdtemp(prefix="n4a-bench-baseline-"))
    try:
        with WorkspaceStore(folder / "ws") as store:  # same schema, same pipelines
            run_id = store.begin_run(f"baseline {n}")
            pipelines = make_pipelines(store, run_id, n // (FOLDS * 3))
        records = prediction_records(pipelines, FOLDS, N_SAMPLES)
        conn = duckdb.connect(str(folder / "ws" / "store.duckdb"))
        try:

            def write() -> None:
                for start in range(0, len(records), BATCH):
                    predictions, arrays = baseline_tables(records[start : start + BATCH])
                    conn.execute("BEGIN")
                    for name, table in (
                        ("predictions", predictions),
                        ("prediction_arrays", arrays),
                    ):
                        cols = ", ".join(table.column_names)
                        conn.register("src", table)
                        if name == "predictions":  # the schema's unique key, computed in SQL
                            conn.execute(
                                f"INSERT INTO {name} ({cols}, natural_key) "
                                f"SELECT {cols}, {NATURAL_KEY_SQL} FROM src"
                            )
                        else:
                            conn.execute(f"INSERT INTO {name} ({cols}) SELECT {cols} FROM src")
                        conn.unregister("src")
                    conn.execute("COMMIT")

            return timed(write)[0]
        finally:
            conn.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="7500,75000")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--repeat", type=int, default=3, help="rounds for sizes <= 10,000")
    parser.add_argument("--large-repeat", type=int, default=2, help="rounds for larger sizes")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    print(f"# save_predictions, {N_SAMPLES}-sample y_true/y_pred, batches of {BATCH};")
    print("# median of rounds alternating baseline and store (the machine is shared)")
    print(f"{'backend':<12}{'predictions':>12}{'time':>12}{'pred/s':>10}{'vs baseline':>13}")
    with postgres_server("postgresql" in backends) as pg:
        for n in sizes:
            rounds = args.repeat if n <= 10_000 else args.large_repeat
            times: dict[str, list[float]] = {"baseline": []}
            for _ in range(rounds):
                times["baseline"].append(baseline_write(n))
                for backend in backends:
                    if backend == "postgresql" and pg is None:
                        continue
                    with open_backend(backend, pg) as store:
                        times.setdefault(backend, []).append(store_write(store, n))
            base = statistics.median(times["baseline"])
            for backend, values in times.items():
                seconds = statistics.median(values)
                ratio = f"{seconds / base:.2f}x"
                print(f"{backend:<12}{n:>12}{fmt_s(seconds):>12}{n / seconds:>10.0f}{ratio:>13}")


if __name__ == "__main__":
    main()
