"""Delete benchmark: `delete_run` of a run with 100k predictions (+arrays, chains, logs).

A second run of the same size stays in the workspace, so the delete has to select its rows.
Chains reference shared artifacts, so the delete also releases references. Target on
DuckDB: under 2 s.

    python benchmarks/bench_delete.py [--predictions 100000] [--backends duckdb,sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import uuid

import pyarrow as pa
from _common import (
    BACKENDS,
    WorkspaceStore,
    fill_synthetic,
    fmt_s,
    insert_tables,
    open_backend,
    postgres_server,
    timed,
)

N_SAMPLES = 50
N_ARTIFACTS = 10


def add_chains_and_logs(store: WorkspaceStore, run_id: str, artifacts: list[str]) -> int:
    """One chain (referencing two shared artifacts) and one log per pipeline of the run."""
    pipelines = store.list_pipelines(run_id=run_id).column("pipeline_id").to_pylist()
    now = dt.datetime(2026, 1, 1)
    chains = pa.table(
        {
            "chain_id": [str(uuid.uuid4()) for _ in pipelines],
            "pipeline_id": pipelines,
            "steps": [json.dumps([{"class": "PLSRegression"}])] * len(pipelines),
            "model_step_idx": [0] * len(pipelines),
            "model_class": ["PLSRegression"] * len(pipelines),
            "fold_strategy": ["per_fold"] * len(pipelines),
            "fold_artifacts": [
                json.dumps({"0": artifacts[i % N_ARTIFACTS]}) for i in range(len(pipelines))
            ],
            "shared_artifacts": [json.dumps({"s": artifacts[-1]})] * len(pipelines),
            "created_at": pa.array([now] * len(pipelines), pa.timestamp("us")),
        }
    )
    logs = pa.table(
        {
            "log_id": [str(uuid.uuid4()) for _ in pipelines],
            "pipeline_id": pipelines,
            "step_idx": [0] * len(pipelines),
            "event": ["fit"] * len(pipelines),
            "level": ["info"] * len(pipelines),
            "created_at": pa.array([now] * len(pipelines), pa.timestamp("us")),
        }
    )
    insert_tables(store, {"chains": chains, "logs": logs})
    return len(pipelines)


def bench(store: WorkspaceStore, n: int) -> tuple[float, int]:
    artifacts = [store.save_artifact({"artifact": i}, format="pickle") for i in range(N_ARTIFACTS)]
    doomed = fill_synthetic(store, n, N_SAMPLES)
    kept = fill_synthetic(store, n, N_SAMPLES)
    add_chains_and_logs(store, doomed, artifacts)
    add_chains_and_logs(store, kept, artifacts)
    store.verify(repair=True)  # reference counts of the chains inserted above
    seconds, deleted = timed(lambda: store.delete_run(doomed))
    assert store.query_predictions(run_id=kept, limit=None).num_rows == n
    assert store.get_run(doomed) is None
    report = store.verify()
    assert report.ok, report.problems()
    return seconds, deleted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=100_000)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    n = args.predictions
    print(f"# delete_run of a run with {n:,} predictions ({N_SAMPLES}-sample arrays), chains,")
    print(f"# logs; another run of {n:,} predictions stays")
    with postgres_server("postgresql" in backends) as pg:
        for backend in backends:
            if backend == "postgresql" and pg is None:
                continue
            with open_backend(backend, pg) as store:
                seconds, deleted = bench(store, n)
            print(f"{backend:<12}{fmt_s(seconds):>12}   {deleted:,} rows deleted")


if __name__ == "__main__":
    main()
