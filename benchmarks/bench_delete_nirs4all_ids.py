"""Delete speed with nirs4all 0.8's prediction ids (issue 13): `delete_run` on DuckDB.

nirs4all 0.8 names predictions with 16-character ids (`str(uuid4())[:16]`); the adapter
stores each as its uuid5 (`validation.stored_prediction_id`) so DuckDB keeps native 16-byte
UUID keys (revision 0005). Two measurements, each against a baseline taken in the same run:

1. The store: a run of N predictions (+50-sample arrays) is deleted while another of the
   same size stays, as `bench_delete.py` does. Variant "nirs4all": every prediction id is
   what the adapter stores for a 16-character nirs4all id, and the last `--through-adapter`
   predictions of the doomed run (+arrays) are written through `Nirs4allWorkspaceStore`
   (`save_prediction` with 16-character ids, `array_store.save_batch`). Baseline "uuid":
   uuid4 ids, the same calls through the adapter with uuid4 ids. Alternated, medians.
2. Raw DuckDB, the representation choice: the same delete on two tables (predictions with a
   UNIQUE natural key, arrays) keyed by the 16-character ids as VARCHAR versus by their
   uuid5 as UUID.

    python benchmarks/bench_delete_nirs4all_ids.py [--predictions 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from _common import WorkspaceStore, fmt_s, insert_tables, synthetic_tables, timed

from nirs4all_store.integrations.nirs4all_store import Nirs4allWorkspaceStore
from nirs4all_store.validation import stored_prediction_id

N_SAMPLES = 50


def nirs4all_id() -> str:
    return str(uuid.uuid4())[:16]  # nirs4all 0.8's prediction ids


def fill(store: WorkspaceStore, n: int, *, nirs4all_ids: bool) -> str:
    """A completed run of `n` predictions (+arrays), ids as the variant stores them."""
    run_id = store.begin_run(f"synthetic {n}")
    pipelines, predictions, arrays = synthetic_tables(run_id, n, N_SAMPLES, seed=0)
    if nirs4all_ids:
        ids = pa.array([stored_prediction_id(nirs4all_id()) for _ in range(n)], pa.string())
        predictions = predictions.set_column(0, "prediction_id", ids)
        arrays = arrays.set_column(0, "prediction_id", ids)
    names = ("pipelines", "predictions", "prediction_arrays")
    insert_tables(store, dict(zip(names, (pipelines, predictions, arrays), strict=True)))
    return run_id


def through_adapter(workspace: Path, run_id: str, k: int, *, nirs4all_ids: bool) -> None:
    """`k` predictions (+arrays) of `run_id` written by nirs4all's calls on the adapter."""
    store = Nirs4allWorkspaceStore(workspace)
    try:
        pipeline_id = store.begin_pipeline(run_id, "adapter", [], [], "dataset_0", "ab" * 32)
        y = np.linspace(0.0, 1.0, N_SAMPLES)
        for i in range(k):
            given = nirs4all_id() if nirs4all_ids else str(uuid.uuid4())
            stored = store.save_prediction(
                pipeline_id, "", "dataset_0", "PLS", "PLSRegression", str(i), "val",
                val_score=0.5, metric="rmse", task_type="regression", prediction_id=given,
            )  # fmt: skip
            assert stored == stored_prediction_id(given), (given, stored)
            store.array_store.save_batch([{"prediction_id": given, "y_true": y, "y_pred": y}])
        store.complete_pipeline(pipeline_id, 0.5, 0.5, "rmse", k)
    finally:
        store.close()


def store_delete(n: int, k: int, *, nirs4all_ids: bool) -> float:
    folder = Path(tempfile.mkdtemp(prefix="n4a-bench-ids-"))
    try:
        workspace = folder / "ws"
        with WorkspaceStore(workspace) as store:
            doomed = fill(store, n - k, nirs4all_ids=nirs4all_ids)
            kept = fill(store, n, nirs4all_ids=nirs4all_ids)
        through_adapter(workspace, doomed, k, nirs4all_ids=nirs4all_ids)
        with WorkspaceStore(workspace) as store:
            assert store.count_predictions(run_id=doomed) == n
            seconds, _ = timed(lambda: store.delete_run(doomed))
            assert store.count_predictions(run_id=kept) == n
            report = store.verify()
            assert report.ok, report.problems()
        return seconds
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def raw_delete(n: int, *, key_type: str) -> float:
    """Raw DuckDB: 2n predictions + arrays keyed by `key_type`; delete and commit one run."""
    con = duckdb.connect(":memory:")
    try:
        raw = [nirs4all_id() for _ in range(2 * n)]
        ids = raw if key_type == "VARCHAR" else [stored_prediction_id(r) for r in raw]
        keys = [str(uuid.uuid4()) for _ in range(2 * n)]
        con.execute(
            f"CREATE TABLE predictions (prediction_id {key_type} PRIMARY KEY, run INTEGER, "
            "natural_key UUID UNIQUE, val_score DOUBLE)"
        )
        con.execute(
            f"CREATE TABLE prediction_arrays (prediction_id {key_type} PRIMARY KEY, "
            "y_pred DOUBLE[])"
        )
        source = pa.table(
            {
                "prediction_id": ids,
                "run": np.arange(2 * n) % 2,
                "natural_key": keys,
                "val_score": np.random.default_rng(0).random(2 * n),
            }
        )
        con.register("src", source)
        con.execute(
            "INSERT INTO predictions "
            "SELECT prediction_id, run, natural_key::UUID, val_score FROM src"
        )
        values = ", ".join(["val_score"] * N_SAMPLES)  # 50-sample arrays, as in part 1
        con.execute(
            f"INSERT INTO prediction_arrays SELECT prediction_id, list_value({values}) FROM src"
        )
        start = time.perf_counter()
        con.execute("BEGIN")
        con.execute(
            "DELETE FROM prediction_arrays WHERE prediction_id IN "
            "(SELECT prediction_id FROM predictions WHERE run = 1)"
        )
        con.execute("DELETE FROM predictions WHERE run = 1")
        con.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=100_000)
    parser.add_argument("--through-adapter", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, k = args.predictions, args.through_adapter
    times: dict[str, list[float]] = {"uuid": [], "nirs4all": []}
    for i in range(args.repeat):
        order = ("uuid", "nirs4all") if i % 2 == 0 else ("nirs4all", "uuid")
        for variant in order:
            times[variant].append(store_delete(n, k, nirs4all_ids=variant == "nirs4all"))
    print(f"# 1. store, DuckDB: delete_run of {n:,} predictions ({k} through the adapter),")
    print(f"#    another run of {n:,} stays; median of {args.repeat}, alternated")
    for variant, values in times.items():
        spread = ", ".join(fmt_s(v).strip() for v in values)
        print(f"{variant:<10}{fmt_s(statistics.median(values)):>12}   ({spread})")
    ratio = statistics.median(times["nirs4all"]) / statistics.median(times["uuid"])
    print(f"nirs4all ids / uuid ids: {ratio:.2f}x")
    raw: dict[str, list[float]] = {"VARCHAR": [], "UUID": []}
    for i in range(args.repeat):
        for key_type in ("VARCHAR", "UUID") if i % 2 == 0 else ("UUID", "VARCHAR"):
            raw[key_type].append(raw_delete(n, key_type=key_type))
    print(f"# 2. raw DuckDB: delete + commit of {n:,} of {2 * n:,} predictions + arrays")
    for key_type, values in raw.items():
        label = "16-char VARCHAR keys" if key_type == "VARCHAR" else "uuid5 UUID keys"
        print(f"{label:<22}{fmt_s(statistics.median(values)):>12}")
    print(
        f"VARCHAR / UUID: {statistics.median(raw['VARCHAR']) / statistics.median(raw['UUID']):.2f}x"
    )


if __name__ == "__main__":
    main()
