"""Readers while a run writes: reader latency and the writer's slowdown (issue 14).

A 20-pipeline `run()` (x 5 folds, 200 x 1000 spectra) records into a DuckDB workspace
(the default) or a SQLite database in a child process, twice: once alone (the baseline,
measured in the same invocation), once while this process opens the workspace read-only
every 200 ms and lists runs, queries predictions and loads one prediction's arrays.
Printed: reader latency (median, p95, max), how many reads failed, and the writer's wall
time with readers / alone.

    python benchmarks/bench_readers.py [--backend duckdb|sqlite] [--pipelines 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from nirs4all_store import WorkspaceLockedError, WorkspaceStore

WRITER = """
import time
from sklearn.cross_decomposition import PLSRegression
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from nirs4all_store import WorkspaceStore, run, synthetic_nirs

store = WorkspaceStore({workspace!r}, url={url!r}, lock_timeout=60)
pipelines = [[scaler(), PLSRegression(n)] for n in range(1, 11)
             for scaler in (MinMaxScaler, StandardScaler)][: {n}]
data = synthetic_nirs(200, 1000, seed=0)
started = time.perf_counter()
run(pipelines, data, workspace=store, cv=5, verbose=0)
print(time.perf_counter() - started, flush=True)
store.close()
"""


def writer(folder: Path, url: str | None, n: int) -> subprocess.Popen[str]:
    workspace = folder / "ws"
    WorkspaceStore(workspace, url=url).close()
    code = textwrap.dedent(WRITER).format(workspace=str(workspace), url=url, n=n)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def read_once(workspace: Path, url: str | None) -> float:
    started = time.perf_counter()
    with WorkspaceStore(workspace, url=url, read_only=True, lock_timeout=10) as store:
        store.list_runs()
        table = store.query_predictions(partition="val", limit=5)
        if table.num_rows:
            store.get_prediction(table.column("prediction_id")[0].as_py(), load_arrays=True)
    return time.perf_counter() - started


def measure(backend: str, n: int, with_readers: bool) -> tuple[float, list[float], int]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = None if backend == "duckdb" else f"sqlite:///{folder / 'store.sqlite'}"
        proc = writer(folder, url, n)
        latencies: list[float] = []
        failures = 0
        while with_readers and proc.poll() is None:
            try:
                latencies.append(read_once(folder / "ws", url))
            except WorkspaceLockedError:
                failures += 1
            time.sleep(0.2)
        out, _ = proc.communicate()
        return float(out.strip().splitlines()[-1]), latencies, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("duckdb", "sqlite"), default="duckdb")
    parser.add_argument("--pipelines", type=int, default=20)
    args = parser.parse_args()
    alone, _, _ = measure(args.backend, args.pipelines, with_readers=False)
    shared, latencies, failures = measure(args.backend, args.pipelines, with_readers=True)
    ordered = sorted(latencies) or [float("nan")]
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    print(f"backend {args.backend}, run() of {args.pipelines} pipelines x 5 folds")
    print(f"reads: {len(latencies)} answered, {failures} locked out")
    print(
        f"reader latency: median {statistics.median(ordered) * 1000:.0f} ms, "
        f"p95 {p95 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"
    )
    print(f"writer: alone {alone:.2f} s, with readers {shared:.2f} s ({shared / alone:.2f}x)")


if __name__ == "__main__":
    main()
