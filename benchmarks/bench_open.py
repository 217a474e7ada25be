"""Open benchmark: opening a workspace at head, `import nirs4all_store`, hold_lock cost.

- open: `WorkspaceStore(path)` + `close()` of an existing DuckDB workspace at head
  (target < 100 ms), and the first query after opening.
- import: wall time of `import nirs4all_store` in a fresh interpreter (median of 5), the
  heaviest modules from `python -X importtime`, and a check that scikit-learn, joblib and
  Alembic stay out of the import path.
- hold_lock: per-operation cost of `hold_lock=False` (connection per operation, file free
  in between) against `hold_lock=True` (pooled connection), for a read and a write.

    python benchmarks/bench_open.py
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import WorkspaceStore, fill_synthetic, fmt_s, median_time

WATCHED = (
    "nirs4all_store",
    "numpy",
    "pyarrow",
    "sqlalchemy",
    "sqlalchemy.orm",
    "nirs4all_store.models",
    "duckdb",
    "duckdb_engine",
)
IMPORT_PROBE = (
    "import sys, time; t = time.perf_counter(); import nirs4all_store; "
    "print(time.perf_counter() - t); "
    "print(','.join(m for m in ('sklearn', 'joblib', 'alembic', 'scipy') if m in sys.modules))"
)


def bench_import() -> None:
    runs = []
    heavy: set[str] = set()
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True
        ).stdout.split("\n")
        runs.append(float(out[0]))
        heavy.update(m for m in out[1].split(",") if m)
    print(f"import nirs4all_store          {fmt_s(statistics.median(runs))}  (median of 5)")
    print(f"  heavy modules loaded: {sorted(heavy) or 'none of sklearn/joblib/alembic/scipy'}")
    stderr = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import nirs4all_store"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    cumulative: dict[str, int] = {}
    for line in stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            cumulative.setdefault(parts[2].strip(), int(parts[1]))
    print("  cumulative import time of the main dependencies (one -X importtime run):")
    for name in WATCHED:
        if name in cumulative:
            print(f"    {name:<28}{cumulative[name] / 1000:8.1f} ms")


def bench_open(folder: Path) -> None:
    workspace = folder / "ws"
    with WorkspaceStore(workspace) as store:
        run_id = fill_synthetic(store, 10_000, 50)

    def open_close() -> None:
        WorkspaceStore(workspace).close()

    def open_query_close() -> None:
        with WorkspaceStore(workspace) as store:
            store.get_run(run_id)

    print(f"open + close (10k predictions)  {fmt_s(median_time(open_close, repeat=15))}")
    print(f"open + get_run + close          {fmt_s(median_time(open_query_close, repeat=15))}")

    for label, kind in (("read  get_run", "read"), ("write begin_run", "write")):
        per_op = {}
        for hold in (True, False):
            with WorkspaceStore(workspace, hold_lock=hold) as store:
                op = (
                    (lambda s=store: s.get_run(run_id))
                    if kind == "read"
                    else (lambda s=store: s.begin_run("bench"))
                )
                per_op[hold] = median_time(lambda op=op: [op() for _ in range(20)], repeat=5) / 20
        ratio = per_op[False] / per_op[True]
        print(
            f"{label:<16} hold_lock=True {fmt_s(per_op[True])}/op   "
            f"hold_lock=False {fmt_s(per_op[False])}/op   x{ratio:.1f}"
        )


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="n4a-bench-open-"))
    try:
        bench_import()
        bench_open(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
