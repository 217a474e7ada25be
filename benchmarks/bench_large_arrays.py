"""One prediction with very large arrays: write, read and peak memory per backend (issue 15,
item 11).

Each backend runs in its own child process (so the peak RSS is that backend's alone): one
prediction whose y_true and y_pred hold `--size` float64 each (default 1e7: 2 x 80 MB) is
written with `save_predictions`, read back with `get_prediction(load_arrays=True)`, then
its arrays are replaced with `save_prediction_arrays` (after an untimed 20,000-item warm-up
prediction: first calls import code). SQLite (raw bytes in a BLOB) is the
baseline measured in the same invocation; the other backends are printed as ratios to it.
PostgreSQL runs on a throwaway server (tests/pg_server.py: `NIRS4ALL_PG_BIN` or a standard
install folder), skipped with a message when there is none.

    python benchmarks/bench_large_arrays.py [--size 10000000] [--backend duckdb ...]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import BACKENDS, fmt_s, open_backend, postgres_server


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def child(backend: str, pg_url: str | None, size: int, pg_storage: str) -> dict[str, Any]:
    """Measured in this process: the figures of one backend."""
    rng = np.random.default_rng(0)
    y_true = rng.normal(size=size)
    y_true[::1000] = np.nan
    y_pred = y_true + rng.normal(scale=0.1, size=size)
    with open_backend(backend, pg_url) as store:
        pipeline_id = store.begin_pipeline(store.begin_run("big"), "p", dataset_name="d")
        if backend == "postgresql" and pg_storage != "EXTERNAL":  # undo revision 0007
            set_pg_storage(store, pg_storage)
        record = {
            "pipeline_id": pipeline_id,
            "dataset_name": "d",
            "model_name": "m",
            "model_class": "PLSRegression",
            "fold_id": "0",
            "partition": "val",
            "metric": "rmse",
            "task_type": "regression",
            "y_true": y_true,
            "y_pred": y_pred,
        }
        # warm-up (untimed): the first call of a path imports and compiles what it uses
        small = record | {
            "fold_id": "warm-up",
            "y_true": y_true[:20_000],
            "y_pred": y_pred[:20_000],
        }
        store.get_prediction(store.save_predictions([small])[0], load_arrays=True)
        before = _rss_mb()
        started = time.perf_counter()
        (prediction_id,) = store.save_predictions([record])
        write = time.perf_counter() - started
        started = time.perf_counter()
        got = store.get_prediction(prediction_id, load_arrays=True)
        read = time.perf_counter() - started
        exact = got is not None and all(
            got[k].tobytes() == v.tobytes() for k, v in (("y_true", y_true), ("y_pred", y_pred))
        )
        del got
        started = time.perf_counter()
        store.save_prediction_arrays(prediction_id, y_true=y_pred, y_pred=y_true)
        replace = time.perf_counter() - started
    return {
        "write": write,
        "read": read,
        "replace": replace,
        "peak_mb": _rss_mb(),
        "data_mb": before,
        "exact": exact,
    }


def set_pg_storage(store: Any, mode: str) -> None:
    import sqlalchemy as sa

    columns = ("y_true", "y_pred", "y_proba", "sample_indices", "weights")
    clauses = ", ".join(f"ALTER COLUMN {c} SET STORAGE {mode}" for c in columns)
    with store.transaction() as session:
        session.execute(sa.text(f"ALTER TABLE prediction_arrays {clauses}"))


def run_child(backend: str, pg_url: str | None, size: int, pg_storage: str) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__)), "--child", backend, "--size", str(size)]
    command += ["--pg-storage", pg_storage]
    if pg_url is not None:
        command += ["--pg-url", pg_url]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{backend} child failed:\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000_000, help="floats per array")
    parser.add_argument("--backend", action="append", choices=BACKENDS)
    parser.add_argument(
        "--pg-storage",
        choices=("EXTERNAL", "EXTENDED"),
        default="EXTERNAL",
        help="storage of the PostgreSQL array columns (EXTENDED: as before revision 0007)",
    )
    parser.add_argument("--child", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--pg-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.pg_url, args.size, args.pg_storage)))
        return
    backends = ["sqlite", *[b for b in (args.backend or BACKENDS) if b != "sqlite"]]
    print(f"# one prediction, y_true + y_pred of {args.size:,} float64 each")
    print(f"# PostgreSQL array columns: STORAGE {args.pg_storage}")
    print(
        f"{'backend':<11} {'write':>11} {'read':>11} {'replace':>11} {'peak RSS':>10} "
        f"{'(before)':>9}  write/read vs sqlite  exact"
    )
    with postgres_server("postgresql" in backends) as pg_url:
        base: dict[str, Any] | None = None
        for backend in backends:
            if backend == "postgresql" and pg_url is None:
                continue
            r = run_child(backend, pg_url, args.size, args.pg_storage)
            base = base or r
            ratio = f"{r['write'] / base['write']:5.2f}x / {r['read'] / base['read']:5.2f}x"
            print(
                f"{backend:<11} {fmt_s(r['write'])} {fmt_s(r['read'])} {fmt_s(r['replace'])} "
                f"{r['peak_mb']:7.0f} MB {r['data_mb']:6.0f} MB  {ratio:>20}  {r['exact']}"
            )


if __name__ == "__main__":
    main()
