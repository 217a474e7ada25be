"""The workspace commands: train (demo, run) and query (runs, show). `top` lives in top.py,
the commands that write files (exports, predict, report) and `ui` in exports.py, maintenance
in maintenance.py.

Each `cmd_*` takes the parsed arguments and returns the exit status; user errors raise
CliError. Heavy modules (scikit-learn, matplotlib) load inside the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nirs4all_store.cli.errors import PROG, CliError
from nirs4all_store.cli.output import decode_json, emit, plain, short
from nirs4all_store.cli.specs import load_pipeline_spec
from nirs4all_store.cli.tables import render
from nirs4all_store.cli.workspace import find_run, open_store

if TYPE_CHECKING:
    from nirs4all_store import RunResult, VerifyReport

# -- train --------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from nirs4all_store.workbench.bundle import predict
    from nirs4all_store.workbench.training import run
    from nirs4all_store.workbench.training.datasets import synthetic_nirs
    from nirs4all_store.workbench.training.parallel import check_n_jobs

    try:
        check_n_jobs(args.n_jobs)  # before the workspace is created
    except ValueError as exc:
        raise CliError(str(exc)) from None
    dataset = synthetic_nirs(args.samples, args.wavelengths, seed=args.seed, test_fraction=0.25)
    pipelines = load_pipeline_spec("demo")
    store = open_store(args, create=True)
    with store:
        result = run(
            pipelines,
            dataset,
            store,
            name="demo",
            cv=args.cv,
            random_state=args.seed,
            n_jobs=args.n_jobs,
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
    """Four lines: where the workspace is, what was compared, what val means, what next."""
    best = result.best
    workspace = shlex.quote(str(result.store.path))
    n_pipelines = len(result.pipeline_ids)
    verify = "ok" if report.ok else "PROBLEMS " + json.dumps(plain(report.problems()))
    print(
        f"\nWorkspace: {result.store.path} (database, artifacts, and exports/ with the bundle)\n"
        f"Compared {n_pipelines} preprocessing x model pipelines by {args.cv}-fold "
        f"cross-validation; the best, {best['preprocessings']} > {best['model_name']}, is "
        f"exported to {bundle_path} and predicts the {len(y_hat)} held-out test spectra "
        f"from the bundle with RMSE {rmse:.4f} (verify: {verify}).\n"
        '"val" is the cross-validated score (out-of-fold predictions of the training '
        'spectra); "test" is the score on the held-out spectra.\n'
        f"Next:\n"
        f"  {PROG} top --workspace {workspace}\n"
        f"  {PROG} report {short(result.run_id)} --workspace {workspace}"
        f'    # HTML report; needs: pip install "nirs4all-store[plot]"\n'
        f"  {PROG} ui --workspace {workspace}"
        f'    # dashboard; needs: pip install "nirs4all-store[ui]"'
    )


def _run_pipelines(value: str, store: Any) -> list[list[Any]]:
    """A built-in template, a spec file, or a template of the workspace's PipelineLibrary."""
    from nirs4all_store.cli.specs import TEMPLATE_SPECS
    from nirs4all_store.workbench.library import PipelineLibrary, template_pipelines

    if value not in TEMPLATE_SPECS and not Path(value).is_file():
        library = PipelineLibrary(store)
        if value in library:
            try:
                return template_pipelines(library, value)
            except (ValueError, TypeError) as exc:
                raise CliError(str(exc)) from None
    return load_pipeline_spec(value)


def cmd_run(args: argparse.Namespace) -> int:
    from nirs4all_store.workbench.training import run
    from nirs4all_store.workbench.training.datasets import DatasetError, load_nirs4all_folder
    from nirs4all_store.workbench.training.splitting import parse_cv

    try:
        cv = parse_cv(args.cv, args.seed)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    datasets = []
    for folder in args.dataset:
        try:
            datasets.append(load_nirs4all_folder(folder))
        except DatasetError as exc:
            raise CliError(str(exc)) from None
    store = open_store(args, create=True)
    with store:
        pipelines = _run_pipelines(args.pipeline, store)
        try:
            result = run(
                pipelines,
                datasets if len(datasets) > 1 else datasets[0],
                store,
                name=args.name,
                cv=cv,
                groups=args.groups,
                metric=args.metric,
                task_type=args.task_type,
                random_state=args.seed,
                n_jobs=args.n_jobs,
                verbose=0 if (args.json or args.quiet) else 1,
            )
        except (ValueError, KeyError) as exc:  # bad arguments: nothing was written
            raise CliError(str(exc).strip("'\"")) from None
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
        rows = [
            decode_json(r)
            for r in store.list_runs(status=args.status, limit=args.limit).to_pylist()
        ]
    for r in rows:
        summary = r.get("summary")
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
        return render(table)

    emit(args, rows, text)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        run = decode_json(find_run(store, args.run_id))
        pipelines = [decode_json(p) for p in store.list_pipelines(run_id=run["run_id"]).to_pylist()]
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
    lines += ["", render(table) if table else "(no pipelines)"]
    errors = [(p["name"], p["error"]) for p in pipelines if p.get("error")]
    for name, err in errors:
        lines.append(f"\nfailed {name}: {err.strip().splitlines()[-1]}")
    return "\n".join(lines)
