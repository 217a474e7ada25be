"""Benchmark: run() of 20 pipelines x 5 folds (+ refits) with n_jobs=1 and n_jobs=2.

Two workloads, both timed in this run with n_jobs=1 as the baseline: the issue's (200 x 1000
spectra, ~25 ms per fit) and a heavier one (2000 x 2000, ~180 ms per fit). Every fold fits
the whole pipeline (honest CV), so a run is 20 x 6 = 120 fits; they go through one joblib
`Parallel` call (loky processes), and only this process writes to the store.

Prints, per workload: the wall time of each setting (median of `--repeat` alternating runs,
after one untimed warm-up that starts the loky workers), the speed-up, whether both settings
stored the same scores, and the CPU time each spent (this process + workers: what the
parallelism itself costs, whatever else runs on the machine). The machine may be shared:
before each workload, the same two settings run a pure CPU loop (no data, nothing to
return), whose speed-up is the most ANY two-process job could get at that moment (about
1.0x when another job already holds the second core).

    python benchmarks/bench_training_parallel.py [--repeat 3] [--samples 200]
        [--wavelengths 1000] [--heavy-samples 2000] [--heavy-wavelengths 2000]
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


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its children (loky's workers) so far:
    what a run costs in CPU whatever the other jobs of the machine take (Linux /proc)."""
    t = os.times()
    total = t.user + t.system + t.children_user + t.children_system
    tick, me = os.sysconf("SC_CLK_TCK"), os.getpid()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a process that ended meanwhile
        if int(fields[1]) == me:  # ppid; utime and stime are fields 14 and 15 of stat
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def ceiling(repeat: int) -> float:
    """Speed-up of 2 loky processes over 1 on a pure CPU loop, now (median of `repeat`)."""
    from joblib import Parallel, delayed

    def wall(n_jobs: int) -> float:
        t0 = time.perf_counter()
        Parallel(n_jobs=n_jobs)(delayed(_burn)(1_500_000) for _ in range(8))
        return time.perf_counter() - t0

    wall(2)  # warm-up
    ratios = [wall(1) / wall(2) for _ in range(repeat)]
    return statistics.median(ratios)


def compare(store: WorkspaceStore, data: Any, repeat: int) -> dict[str, Any]:
    """n_jobs=1 and n_jobs=2 on `data`, alternating; wall times and the stored scores."""
    run(pipelines()[:2], data, store, cv=5, n_jobs=2, verbose=0)  # warm-up: loky starts
    times: dict[int, list[float]] = {1: [], 2: []}
    stored: dict[int, list[tuple[Any, ...]]] = {}
    cpu: dict[int, list[float]] = {1: [], 2: []}
    fit_s = []
    for i in range(repeat):
        for n_jobs in (1, 2) if i % 2 == 0 else (2, 1):
            c0, t0 = cpu_seconds(), time.perf_counter()
            result = run(pipelines(), data, store, cv=5, n_jobs=n_jobs, verbose=0)
            times[n_jobs].append(time.perf_counter() - t0)
            cpu[n_jobs].append(cpu_seconds() - c0)
            stored[n_jobs] = scores(store, result.run_id)
            if n_jobs == 1:
                fit_s.append(result.timings["fit_s"])
    same = [a[:4] == b[:4] for a, b in zip(stored[1], stored[2], strict=True)]
    diffs = [
        abs(x - y)
        for a, b in zip(stored[1], stored[2], strict=True)
        for x, y in zip(a[4:], b[4:], strict=True)
        if x is not None and y is not None
    ]
    return {"times": times, "cpu": cpu, "same": all(same), "diff": max(diffs), "fit_s": fit_s}


def report(title: str, out: dict[str, Any], limit: float) -> None:
    times = out["times"]
    one, two = statistics.median(times[1]), statistics.median(times[2])
    per_fit = statistics.median(out["fit_s"]) / 120 * 1000
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{title}: 20 pipelines x 5 folds (+ refit), {per_fit:.0f} ms per fit (n_jobs=1)")
    print(f"  n_jobs=1: {one:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in times[1])})")
    print(f"  n_jobs=2: {two:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in times[2])})")
    print(f"  speed-up: {one / two:.2f}x   (pure CPU loop, same moment: {limit:.2f}x)")
    cpu1, cpu2 = (statistics.median(out["cpu"][n]) for n in (1, 2))
    print(f"  CPU time (this process + workers): n_jobs=1 {cpu1:.2f} s, n_jobs=2 {cpu2:.2f} s")
    print(f"  same records: {out['same']}; largest score difference: {out['diff']:.1e}")
    print(f"  load average after: {load} on {os.cpu_count()} cores (the machine is shared)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--wavelengths", type=int, default=1000)
    parser.add_argument("--heavy-samples", type=int, default=2000)
    parser.add_argument("--heavy-wavelengths", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    workloads = [
        ("issue", args.samples, args.wavelengths),
        ("heavy", args.heavy_samples, args.heavy_wavelengths),
    ]
    with tempfile.TemporaryDirectory() as tmp, WorkspaceStore(Path(tmp) / "ws") as store:
        for title, n_samples, n_wavelengths in workloads:
            data = synthetic_nirs(n_samples, n_wavelengths, seed=0, test_fraction=0.2)
            limit = ceiling(args.repeat)
            out = compare(store, data, args.repeat)
            report(f"{title} ({n_samples} x {n_wavelengths} spectra)", out, limit)


if __name__ == "__main__":
    main()
