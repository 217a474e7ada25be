"""Single-row API against the bulk path: 1 run x 500 pipelines x 5 folds x 3 partitions.

7,500 predictions with 200-sample y_true/y_pred, written once through `save_prediction` +
`save_prediction_arrays` (two transactions per prediction) and once through
`save_predictions` (one call per pipeline, and one call for everything). The single-row
path takes minutes: `--quick` runs it on 50 pipelines and extrapolates nothing.

    python benchmarks/bench_single_vs_bulk.py [--quick] [--backend duckdb]
"""

from __future__ import annotations

import argparse
from typing import Any

from _common import (
    BACKENDS,
    fmt_s,
    make_pipelines,
    open_backend,
    postgres_server,
    prediction_records,
    timed,
)

FOLDS = 5
N_SAMPLES = 200
ARRAYS = ("y_true", "y_pred")


def single(store: Any, records: list[dict[str, Any]]) -> None:
    for record in records:
        fields = {k: v for k, v in record.items() if k not in ARRAYS}
        fields.setdefault("chain_id", None)
        prediction_id = store.save_prediction(**fields)
        store.save_prediction_arrays(
            prediction_id, y_true=record["y_true"], y_pred=record["y_pred"]
        )


def per_pipeline(store: Any, records: list[dict[str, Any]]) -> None:
    per = FOLDS * 3
    for start in range(0, len(records), per):
        store.save_predictions(records[start : start + per])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="single-row path on 50 pipelines")
    parser.add_argument("--pipelines", type=int, default=500)
    parser.add_argument("--backend", default="duckdb", choices=BACKENDS)
    args = parser.parse_args()
    n_single = 50 if args.quick else args.pipelines

    print(f"# {args.backend}: pipelines x {FOLDS} folds x 3 partitions, {N_SAMPLES}-sample arrays")
    print(f"{'path':<40}{'predictions':>12}{'time':>12}{'pred/s':>10}")
    results = {}
    with postgres_server(args.backend == "postgresql") as pg:
        cases = (
            ("save_prediction + save_prediction_arrays", single, n_single),
            ("save_predictions per pipeline (15 rows)", per_pipeline, args.pipelines),
            ("save_predictions, one call", lambda s, r: s.save_predictions(r), args.pipelines),
        )
        for label, write, n_pipelines in cases:
            with open_backend(args.backend, pg) as store:
                run_id = store.begin_run("single vs bulk")
                records = prediction_records(
                    make_pipelines(store, run_id, n_pipelines), FOLDS, N_SAMPLES
                )
                seconds, _ = timed(
                    lambda write=write, store=store, records=records: write(store, records)
                )
                assert store.query_predictions(run_id=run_id).num_rows == len(records)
            rate = len(records) / seconds
            results[label] = rate
            print(f"{label:<40}{len(records):>12}{fmt_s(seconds):>12}{rate:>10.0f}")
    first = next(iter(results.values()))
    for label, rate in list(results.items())[1:]:
        print(f"speed-up of {label!r} over single rows: x{rate / first:.0f}")


if __name__ == "__main__":
    main()
