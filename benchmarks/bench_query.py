"""Query benchmark at 10k, 100k and 1M predictions.

Measures `top_predictions(10)`, `top_predictions(10, group_by="model_class")`,
`query_predictions(dataset_name=..., partition="val")` and
`get_prediction(..., load_arrays=True)` (median of 5 after a warm-up) and the growth from
the smallest to the largest size. Workspaces are filled column-wise (Arrow on DuckDB,
executemany elsewhere); arrays are shorter at larger sizes to keep the fill quick.
Target: DuckDB top-10 at 1M under 100 ms, growing sub-linearly.

    python benchmarks/bench_query.py [--sizes 10000,100000,1000000] [--backends duckdb]
        [--server-sizes 10000,100000]   # sizes for SQLite/PostgreSQL
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from _common import (
    BACKENDS,
    WorkspaceStore,
    fill_synthetic,
    fmt_s,
    median_time,
    open_backend,
    postgres_server,
    timed,
)


def samples_for(n: int) -> int:
    return 200 if n <= 10_000 else 50 if n <= 100_000 else 10


def queries(store: WorkspaceStore, some_id: str) -> dict[str, Callable[[], Any]]:
    return {
        "top_predictions(10)": lambda: store.top_predictions(10),
        "top_predictions(10, group_by=model_class)": lambda: store.top_predictions(
            10, group_by="model_class"
        ),
        "query_predictions(dataset, val)": lambda: store.query_predictions(
            dataset_name="dataset_3", partition="val"
        ),
        "get_prediction(load_arrays=True)": lambda: store.get_prediction(some_id, load_arrays=True),
    }


def measure(store: WorkspaceStore, n: int) -> dict[str, tuple[float, int]]:
    fill_seconds, _ = timed(lambda: fill_synthetic(store, n, samples_for(n)))
    print(f"#   filled {n:,} predictions ({samples_for(n)}-sample arrays) in {fill_seconds:.1f} s")
    some_id = store.query_predictions(limit=1, offset=n // 2).column("prediction_id")[0].as_py()
    results = {}
    for name, fn in queries(store, some_id).items():
        rows = fn()
        count = 1 if isinstance(rows, dict) else rows.num_rows
        results[name] = (median_time(fn, repeat=5), count)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--server-sizes", default="10000,100000")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    with postgres_server("postgresql" in backends) as pg:
        for backend in backends:
            if backend == "postgresql" and pg is None:
                continue
            sizes = [
                int(s)
                for s in (args.sizes if backend == "duckdb" else args.server_sizes).split(",")
            ]
            table: dict[str, dict[int, tuple[float, int]]] = {}
            for n in sizes:
                print(f"# {backend}: {n:,} predictions")
                with open_backend(backend, pg) as store:
                    for name, value in measure(store, n).items():
                        table.setdefault(name, {})[n] = value
            header = "".join(f"{n:>14,}" for n in sizes)
            growth = f"growth x{sizes[-1] // sizes[0]} rows" if len(sizes) > 1 else ""
            print(f"\n{backend:<44}{header}   {growth}")
            for name, by_size in table.items():
                cells = "".join(f"{fmt_s(by_size[n][0]):>14}" for n in sizes)
                ratio = by_size[sizes[-1]][0] / by_size[sizes[0]][0] if len(sizes) > 1 else 1.0
                rows = by_size[sizes[-1]][1]
                print(f"  {name:<42}{cells}   x{ratio:.1f} ({rows:,} rows at {sizes[-1]:,})")
            print()


if __name__ == "__main__":
    main()
