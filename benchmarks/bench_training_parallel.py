"""Benchmark: run() of 20 pipelines x 5 folds (+ refits) with n_jobs=1 and n_jobs=2.

Every fold fits the whole pipeline (honest CV), so a run is 20 x 6 = 120 fits; they go
through one joblib `Parallel` call (loky processes), and only this process writes to the
store. Prints the wall time of each setting (median of `--repeat` alternating runs, after
one untimed warm-up that starts the loky workers), the speed-up, and checks that both
settings stored the same scores.

    python benchmarks/bench_training_parallel.py [--samples 200] [--wavelengths 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sklearn.cross_decomposition import PLSRegression
from sklearn.linear_model import Ridge
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from nirs4all_store import WorkspaceStore
from nirs4all_store.workbench.training.datasets import synthetic_nirs
from nirs4all_store.workbench.training.session import run
from nirs4all_store.workbench.training.transforms import MSC, SNV, SavitzkyGolay


def pipelines() -> list[list[Any]]:
    """5 preprocessings x 4 models = 20 pipelines."""
    pres: list[list[Any]] = [
        [MinMaxScaler()],
        [StandardScaler()],
        [SNV()],
        [MSC()],
        [SavitzkyGolay(11, 2, 1)],
    ]
    models = [PLSRegression(5), PLSRegression(10), PLSRegression(20), Ridge(alpha=1.0)]
    return [[*pre, model] for pre in pres for model in models]


def scores(store: WorkspaceStore, run_id: str) -> list[tuple[Any, ...]]:
    rows = store.query_predictions(run_id=run_id).to_pylist()
    key = ("model_name", "preprocessings", "fold_id", "partition")
    return sorted(
        (*(r[k] for k in key), r["val_score"], r["test_score"], r["train_score"]) for r in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--wavelengths", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = synthetic_nirs(args.samples, args.wavelengths, seed=0, test_fraction=0.2)
    times: dict[int, list[float]] = {1: [], 2: []}
    stored: dict[int, list[tuple[Any, ...]]] = {}
    with tempfile.TemporaryDirectory() as tmp, WorkspaceStore(Path(tmp) / "ws") as store:
        run(pipelines()[:2], data, store, cv=5, n_jobs=2, verbose=0)  # warm-up: loky starts
        for i in range(args.repeat):
            for n_jobs in (1, 2) if i % 2 == 0 else (2, 1):
                t0 = time.perf_counter()
                result = run(pipelines(), data, store, cv=5, n_jobs=n_jobs, verbose=0)
                times[n_jobs].append(time.perf_counter() - t0)
                stored[n_jobs] = scores(store, result.run_id)
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print(f"20 pipelines x 5 folds (+ refit) on {args.samples} x {args.wavelengths} spectra")
    print(f"n_jobs=1: {one:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in times[1])})")
    print(f"n_jobs=2: {two:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in times[2])})")
    print(f"speed-up: {one / two:.2f}x")
    same = [a[:4] == b[:4] for a, b in zip(stored[1], stored[2], strict=True)]
    diffs = [
        abs(x - y)
        for a, b in zip(stored[1], stored[2], strict=True)
        for x, y in zip(a[4:], b[4:], strict=True)
        if x is not None and y is not None
    ]
    print(f"same records: {all(same)}; largest score difference: {max(diffs):.1e}")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"(load average now: {load} on {os.cpu_count()} cores: the machine is shared)")


if __name__ == "__main__":
    main()
