"""The workspace commands: train (demo, run), query (runs, show, top), export and predict
(export-chain, export-predictions, predict) and report. Maintenance lives in maintenance.py.

Each `cmd_*` takes the parsed arguments and returns the exit status; user errors raise
CliError. Heavy modules (scikit-learn, matplotlib) load inside the commands that need them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nirs4all_store.cli.errors import PROG, CliError
from nirs4all_store.cli.output import emit, output_path, plain, short
from nirs4all_store.cli.specs import load_pipeline_spec
from nirs4all_store.cli.workspace import find_run, open_store, run_result
from nirs4all_store.workbench.progress import format_table

if TYPE_CHECKING:
    import pyarrow as pa

    from nirs4all_store import RunResult, VerifyReport, WorkspaceStore

# -- train --------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from nirs4all_store.workbench.bundle import predict
    from nirs4all_store.workbench.training import run
    from nirs4all_store.workbench.training.datasets import synthetic_nirs

    dataset = synthetic_nirs(args.samples, args.wavelengths, seed=args.seed, test_fraction=0.25)
    pipelines = load_pipeline_spec("demo")
    store = open_store(args)
    with store:
        result = run(
            pipelines,
            dataset,
            store,
            name="demo",
            cv=args.cv,
            random_state=args.seed,
            verbose=0 if args.json else 1,
        )
        bundle_path = store.exports_path() / "best.n4a"
        result.export(bundle_path)
        y_hat = predict(bundle_path, dataset.X_test)
        rmse = float(np.sqrt(np.mean((y_hat - dataset.y_test) ** 2)))
        report = store.verify()
        data = {
            "run_id": result.run_id,
            "workspace": str(store.path),
            "leaderboard": result.top(10).to_pylist(),
            "bundle": str(bundle_path),
            "bundle_test_rmse": rmse,
            "predictions_head": y_hat[:5].tolist(),
            "verify_ok": report.ok,
        }
        if args.json:
            emit(args, data, "")
        else:
            _print_demo_summary(args, result, bundle_path, y_hat, rmse, report)
    return 0 if report.ok else 1


def _print_demo_summary(
    args: argparse.Namespace,
    result: RunResult,
    bundle_path: Path,
    y_hat: np.ndarray,
    rmse: float,
    report: VerifyReport,
) -> None:
    best = result.best
    print(
        f"\nExported the best chain ({best['preprocessings']} > {best['model_name']}) "
        f"to {bundle_path}"
    )
    print(
        f"Predicted {len(y_hat)} test spectra from the bundle: RMSE {rmse:.4f}; "
        f"first: {', '.join(f'{v:.3f}' for v in y_hat[:5])}"
    )
    print("verify: " + ("ok" if report.ok else "PROBLEMS " + json.dumps(plain(report.problems()))))
    print(
        f"\nNext: {PROG} runs --workspace {args.workspace}    "
        f"{PROG} report {short(result.run_id)} -o report.html"
    )


def cmd_run(args: argparse.Namespace) -> int:
    from nirs4all_store.workbench.training import run
    from nirs4all_store.workbench.training.datasets import DatasetError, load_nirs4all_folder

    pipelines = load_pipeline_spec(args.pipeline)
    datasets = []
    for folder in args.dataset:
        try:
            datasets.append(load_nirs4all_folder(folder))
        except DatasetError as exc:
            raise CliError(str(exc)) from None
    store = open_store(args)
    with store:
        result = run(
            pipelines,
            datasets if len(datasets) > 1 else datasets[0],
            store,
            name=args.name,
            cv=args.cv,
            metric=args.metric,
            task_type=args.task_type,
            random_state=args.seed,
            verbose=0 if (args.json or args.quiet) else 1,
        )
        data = {
            "run_id": result.run_id,
            "status": result.status,
            "failed": result.failed,
            "leaderboard": result.top(10).to_pylist(),
        }
        if args.json:
            emit(args, data, "")
        elif args.quiet:
            print(result.run_id)
    return 0 if result.status == "completed" else 1


# -- query --------------------------------------------------------------------------------


def cmd_runs(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        rows = store.list_runs(status=args.status, limit=args.limit).to_pylist()
        for r in rows:
            summary = r.get("summary")
            if isinstance(summary, str):
                try:
                    summary = r["summary"] = json.loads(summary)
                except ValueError:
                    summary = None
            r["pipelines"] = summary.get("pipelines") if isinstance(summary, dict) else None

    def text() -> str:
        if not rows:
            return "(no runs)"
        table = [
            {
                "run_id": short(r["run_id"]),
                "name": r["name"],
                "status": r["status"],
                "pipelines": r["pipelines"],
                "created": r["created_at"],
            }
            for r in rows
        ]
        return format_table(table)

    emit(args, rows, text)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        run = find_run(store, args.run_id)
        pipelines = store.list_pipelines(run_id=run["run_id"]).to_pylist()
    data = {"run": run, "pipelines": pipelines}
    emit(args, data, lambda: _show_text(run, pipelines))
    return 0


def _show_text(run: dict[str, Any], pipelines: list[dict[str, Any]]) -> str:
    cfg = run.get("config") or {}
    lines = [
        f"run      {run['run_id']}",
        f"name     {run['name']}",
        f"status   {run['status']}",
        f"created  {run['created_at']}",
        f"metric   {cfg.get('metric', '-')}   cv {cfg.get('cv', '-')}",
        "datasets "
        + ", ".join(str(d.get("name")) for d in run.get("datasets") or [] if isinstance(d, dict)),
    ]
    if run.get("error"):
        lines.append(f"error    {run['error']}")
    table = [
        {
            "pipeline_id": short(p["pipeline_id"]),
            "name": p["name"],
            "dataset": p["dataset_name"],
            "status": p["status"],
            "best_val": p["best_val"],
            "best_test": p["best_test"],
            "ms": round(p["duration_ms"]) if p["duration_ms"] is not None else None,
        }
        for p in pipelines
    ]
    lines += ["", format_table(table) if table else "(no pipelines)"]
    errors = [(p["name"], p["error"]) for p in pipelines if p.get("error")]
    for name, err in errors:
        lines.append(f"\nfailed {name}: {err.strip().splitlines()[-1]}")
    return "\n".join(lines)


def cmd_top(args: argparse.Namespace) -> int:
    from nirs4all_store.workbench.training import leaderboard_rows

    with open_store(args) as store:
        if args.run:
            table, metric = _run_leaderboard(args, store)
        else:
            table, metric = _workspace_leaderboard(args, store)
    rows = table.to_pylist()
    emit(
        args,
        rows,
        lambda: format_table(leaderboard_rows(table, metric)) if rows else "(no predictions)",
    )
    return 0


def _order(args: argparse.Namespace) -> bool | None:
    return None if args.order is None else args.order == "asc"


def _run_leaderboard(args: argparse.Namespace, store: WorkspaceStore) -> tuple[pa.Table, str]:
    """The leaderboard of `--run`: its table and metric."""
    result = run_result(store, find_run(store, args.run))
    table = result.top(
        args.n,
        partition=args.partition,
        fold_id=None if args.fold == "all" else args.fold,
        dataset_name=args.dataset,
        ascending=_order(args),
    )
    return table, result.metric


def _workspace_leaderboard(args: argparse.Namespace, store: WorkspaceStore) -> tuple[pa.Table, str]:
    """The leaderboard over every run: its table and metric."""
    from nirs4all_store.workbench.training import SCORE_COLUMN, metric_ascending

    sample = store.query_predictions(partition=args.partition, limit=1).to_pylist()
    metric = args.metric or (sample[0]["metric"] if sample else "rmse")
    # Scores of different metrics do not compare: keep pipelines scored with `metric`.
    pipes = store.list_pipelines().to_pylist()
    filters: dict[str, Any] = {
        "pipeline_id": [p["pipeline_id"] for p in pipes if p["metric"] == metric]
    }
    if args.fold != "all":
        filters["fold_id"] = args.fold
    order = _order(args)
    if not filters["pipeline_id"]:
        return store.query_predictions(limit=0), metric
    table = store.top_predictions(
        args.n,
        metric=SCORE_COLUMN[args.partition],
        ascending=metric_ascending(metric) if order is None else order,
        partition=args.partition,
        dataset_name=args.dataset,
        **filters,
    )
    return table, metric


# -- export and predict -------------------------------------------------------------------


def cmd_export_chain(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.run:
            result = run_result(store, find_run(store, args.run))
            chain_id = str(result.best["chain_id"])
        elif args.prediction:
            row = store.get_prediction(args.prediction)
            if row is None or not row.get("chain_id"):
                raise CliError(f"unknown prediction {args.prediction!r} (or it has no chain)")
            chain_id = row["chain_id"]
        elif args.chain_id:
            chain_id = args.chain_id
        else:
            raise CliError("give a CHAIN_ID, --run RUN_ID (its best chain) or --prediction ID")
        if store.get_chain(chain_id) is None:
            raise CliError(f"unknown chain {chain_id!r}")
        output = output_path(args.output) or (store.exports_path() / f"{chain_id}.n4a")
        path = store.export_chain(chain_id, output)
    emit(args, {"chain_id": chain_id, "bundle": str(path)}, f"exported chain {chain_id} to {path}")
    return 0


def cmd_export_predictions(args: argparse.Namespace) -> int:
    filters: dict[str, Any] = {}
    for name in ("dataset_name", "partition", "fold_id"):
        if getattr(args, name) is not None:
            filters[name] = getattr(args, name)
    with open_store(args) as store:
        if args.run:
            filters["run_id"] = find_run(store, args.run)["run_id"]
        output = output_path(args.output) or (store.exports_path() / "predictions.parquet")
        path = store.export_predictions_parquet(output, include_arrays=args.arrays, **filters)
    emit(args, {"parquet": str(path)}, f"wrote {path}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from nirs4all_store.workbench.bundle import load_bundle
    from nirs4all_store.workbench.training.datasets import DatasetError, parse_spectra_table

    csv_path = Path(args.csv)
    if not csv_path.is_file():
        raise CliError(f"{csv_path}: no such file; expected a ;-separated CSV of spectra")
    bundle_path = Path(args.bundle)
    if not bundle_path.is_file():
        raise CliError(f"{bundle_path}: no such bundle file")
    try:
        X, _wavelengths, _ = parse_spectra_table(csv_path, x_file=True)
    except DatasetError as exc:
        raise CliError(str(exc)) from None
    bundle = load_bundle(bundle_path)
    y_hat = np.asarray(bundle.predict(X))
    lines = "\n".join(repr(float(v)) for v in y_hat.reshape(len(y_hat), -1)[:, 0])
    if args.output:
        Path(args.output).write_text("y_pred\n" + lines + "\n", encoding="utf-8")
        emit(
            args,
            {"predictions": str(args.output), "n": len(y_hat)},
            f"wrote {len(y_hat)} predictions to {args.output}",
        )
    else:
        emit(args, {"predictions": y_hat.tolist()}, lines)
    return 0


# -- report -------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    from nirs4all_store.workbench.report import (
        PlotDependencyError,
        require_matplotlib,
        write_report,
    )

    try:
        require_matplotlib()  # before touching the workspace
    except PlotDependencyError as exc:
        raise CliError(str(exc)) from None
    with open_store(args) as store:
        run = find_run(store, args.run_id)
        path = write_report(store, run["run_id"], args.output, n_plots=args.plots)
    emit(args, {"report": str(path)}, f"wrote {path}")
    return 0
