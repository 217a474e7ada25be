"""`nirs4all-store` command line (also `python -m nirs4all_store`).

Every command takes `--workspace PATH` (default ./workspace) or `--url URL` (also the
NIRS4ALL_STORE_URL environment variable), `--json` for machine output and `--debug` for
tracebacks. Errors print one line on stderr and exit 1 (2 for usage errors). Built on the
public API only: `WorkspaceStore`, `run()`, bundles, exports and the migration helpers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nirs4all_store.workbench.progress import format_table

PROG = "nirs4all-store"
DEFAULT_WORKSPACE = "workspace"

# -- pipelines: templates and spec files --------------------------------------------------

#: Short class names accepted in pipeline specs (any importable dotted path works too).
KNOWN_CLASSES = {
    "MinMaxScaler": "sklearn.preprocessing.MinMaxScaler",
    "StandardScaler": "sklearn.preprocessing.StandardScaler",
    "RobustScaler": "sklearn.preprocessing.RobustScaler",
    "Normalizer": "sklearn.preprocessing.Normalizer",
    "PCA": "sklearn.decomposition.PCA",
    "SNV": "nirs4all_store.workbench.training.transforms.SNV",
    "PLSRegression": "sklearn.cross_decomposition.PLSRegression",
    "Ridge": "sklearn.linear_model.Ridge",
    "Lasso": "sklearn.linear_model.Lasso",
    "ElasticNet": "sklearn.linear_model.ElasticNet",
    "LinearRegression": "sklearn.linear_model.LinearRegression",
    "SVR": "sklearn.svm.SVR",
    "SVC": "sklearn.svm.SVC",
    "RandomForestRegressor": "sklearn.ensemble.RandomForestRegressor",
    "RandomForestClassifier": "sklearn.ensemble.RandomForestClassifier",
    "LogisticRegression": "sklearn.linear_model.LogisticRegression",
    "LinearDiscriminantAnalysis": "sklearn.discriminant_analysis.LinearDiscriminantAnalysis",
    "KNeighborsClassifier": "sklearn.neighbors.KNeighborsClassifier",
}

TEMPLATE_SPECS: dict[str, list[list[Any]]] = {
    "pls": [["MinMaxScaler", {"class": "PLSRegression", "params": {"n_components": 10}}]],
    "ridge": [["StandardScaler", "Ridge"]],
    "demo": [
        [pre, model]
        for pre in ("MinMaxScaler", "StandardScaler", "SNV")
        for model in (
            {"class": "PLSRegression", "params": {"n_components": 5}},
            {"class": "PLSRegression", "params": {"n_components": 10}},
            "Ridge",
        )
    ],
    "classify": [
        ["StandardScaler", {"class": "LogisticRegression", "params": {"max_iter": 2000}}],
        ["SNV", {"class": "LogisticRegression", "params": {"max_iter": 2000}}],
    ],
}


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def _resolve_class(name: str, where: str) -> type:
    import importlib

    dotted = KNOWN_CLASSES.get(name, name)
    module_name, _, attr = dotted.rpartition(".")
    if not module_name:
        raise CliError(
            f"{where}: unknown step class {name!r}; expected one of {sorted(KNOWN_CLASSES)} "
            "or a dotted path such as sklearn.linear_model.Ridge"
        )
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        raise CliError(f"{where}: cannot import step class {dotted!r}") from None
    if not isinstance(cls, type):
        raise CliError(f"{where}: {dotted!r} is not a class")
    return cls


def _build_step(spec: Any, where: str) -> Any:
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, dict):
        name = spec.get("class") or spec.get("operator_class")
        params = spec.get("params") or {}
        if not isinstance(name, str) or not isinstance(params, dict):
            raise CliError(f"{where}: expected {{'class': NAME, 'params': {{...}}}}, got {spec!r}")
    else:
        raise CliError(
            f"{where}: a step is a class name or {{'class': ..., 'params': ...}}, got {spec!r}"
        )
    cls = _resolve_class(name, where)
    try:
        return cls(**params)
    except TypeError as exc:
        raise CliError(f"{where}: bad parameters for {name}: {exc}") from None


def build_pipelines(spec: Any, where: str = "pipeline spec") -> list[list[Any]]:
    """Estimators from a spec: steps, a list of step lists, or {"pipelines": [...]}."""
    if isinstance(spec, dict) and "pipelines" in spec:
        spec = spec["pipelines"]
    elif isinstance(spec, dict) and "pipeline" in spec:
        spec = spec["pipeline"]
    if not isinstance(spec, list) or not spec:
        raise CliError(f"{where}: expected a non-empty list of steps or of pipelines, got {spec!r}")
    nested = [spec] if not all(isinstance(p, list) for p in spec) else spec
    return [
        [_build_step(step, f"{where}: pipeline {i} step {j}") for j, step in enumerate(steps)]
        for i, steps in enumerate(nested)
    ]


def load_pipeline_spec(value: str) -> list[list[Any]]:
    """A template name (pls, ridge, demo, classify) or a .json/.yaml/.yml spec file."""
    if value in TEMPLATE_SPECS:
        return build_pipelines(TEMPLATE_SPECS[value], f"template {value!r}")
    path = Path(value)
    if not path.is_file():
        raise CliError(
            f"--pipeline {value!r}: not a template ({', '.join(TEMPLATE_SPECS)}) nor a spec file"
        )
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise CliError(f"{path}: reading YAML needs PyYAML (pip install pyyaml)") from None
            spec = yaml.safe_load(text)
        else:
            spec = json.loads(text)
    except (ValueError, Exception) as exc:
        if isinstance(exc, CliError):
            raise
        raise CliError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from None
    return build_pipelines(spec, str(path))


# -- output -------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _emit(args: argparse.Namespace, data: Any, text: str | Callable[[], str]) -> None:
    if args.json:
        sys.stdout.write(json.dumps(_plain(data), indent=2, default=str) + "\n")
    else:
        sys.stdout.write((text() if callable(text) else text).rstrip("\n") + "\n")


def _short(value: Any, n: int = 8) -> str:
    return str(value)[:n] if value else ""


# -- store access -------------------------------------------------------------------------


def _open(args: argparse.Namespace) -> Any:
    from nirs4all_store.store import WorkspaceStore

    url = args.url or os.environ.get("NIRS4ALL_STORE_URL") or None
    return WorkspaceStore(args.workspace, url=url)


def _run_row(store: Any, run_id: str) -> dict[str, Any]:
    from nirs4all_store.repositories.base import check_id

    try:
        check_id("run_id", run_id)
    except (TypeError, ValueError) as exc:
        raise CliError(str(exc)) from None
    run = store.get_run(run_id)
    if run is None:
        raise CliError(f"unknown run {run_id!r}: see `{PROG} runs`")
    return run


def _find_run(store: Any, prefix: str) -> dict[str, Any]:
    """A run by id or unique id prefix (the tables print 8-character prefixes)."""
    if len(prefix) >= 36:
        return _run_row(store, prefix)
    runs = [r for r in store.list_runs(limit=None).to_pylist() if r["run_id"].startswith(prefix)]
    if not runs:
        raise CliError(f"unknown run {prefix!r}: see `{PROG} runs`")
    if len(runs) > 1:
        raise CliError(
            f"run prefix {prefix!r} is ambiguous ({len(runs)} runs); give more characters"
        )
    return store.get_run(runs[0]["run_id"])


def _run_result(store: Any, run: dict[str, Any]) -> Any:
    from nirs4all_store.workbench.training.session import RunResult

    metric = (run.get("config") or {}).get("metric") or "rmse"
    ids = store.list_pipelines(run_id=run["run_id"]).column("pipeline_id").to_pylist()
    return RunResult(run_id=run["run_id"], store=store, metric=metric, pipeline_ids=ids)


# -- commands -----------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from nirs4all_store.workbench.bundle import predict
    from nirs4all_store.workbench.training.datasets import synthetic_nirs
    from nirs4all_store.workbench.training.session import run

    dataset = synthetic_nirs(args.samples, args.wavelengths, seed=args.seed, test_fraction=0.25)
    pipelines = load_pipeline_spec("demo")
    store = _open(args)
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
        best = result.best
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
            _emit(args, data, "")
        else:
            print(
                f"\nExported the best chain ({best['preprocessings']} > {best['model_name']}) "
                f"to {bundle_path}"
            )
            print(
                f"Predicted {len(y_hat)} test spectra from the bundle: RMSE {rmse:.4f}; "
                f"first: {', '.join(f'{v:.3f}' for v in y_hat[:5])}"
            )
            print(
                "verify: "
                + ("ok" if report.ok else "PROBLEMS " + json.dumps(_plain(report.problems())))
            )
            print(
                f"\nNext: {PROG} runs --workspace {args.workspace}    "
                f"{PROG} report {_short(result.run_id)} -o report.html"
            )
    return 0 if report.ok else 1


def cmd_run(args: argparse.Namespace) -> int:
    from nirs4all_store.workbench.training.datasets import DatasetError, load_nirs4all_folder
    from nirs4all_store.workbench.training.session import run

    pipelines = load_pipeline_spec(args.pipeline)
    datasets = []
    for folder in args.dataset:
        try:
            datasets.append(load_nirs4all_folder(folder))
        except DatasetError as exc:
            raise CliError(str(exc)) from None
    store = _open(args)
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
            _emit(args, data, "")
        elif args.quiet:
            print(result.run_id)
    return 0 if result.status == "completed" else 1


def cmd_runs(args: argparse.Namespace) -> int:
    with _open(args) as store:
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
                "run_id": _short(r["run_id"]),
                "name": r["name"],
                "status": r["status"],
                "pipelines": r["pipelines"],
                "created": r["created_at"],
            }
            for r in rows
        ]
        return format_table(table)

    _emit(args, rows, text)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _open(args) as store:
        run = _find_run(store, args.run_id)
        pipelines = store.list_pipelines(run_id=run["run_id"]).to_pylist()
    data = {"run": run, "pipelines": pipelines}

    def text() -> str:
        cfg = run.get("config") or {}
        lines = [
            f"run      {run['run_id']}",
            f"name     {run['name']}",
            f"status   {run['status']}",
            f"created  {run['created_at']}",
            f"metric   {cfg.get('metric', '-')}   cv {cfg.get('cv', '-')}",
            "datasets "
            + ", ".join(
                str(d.get("name")) for d in run.get("datasets") or [] if isinstance(d, dict)
            ),
        ]
        if run.get("error"):
            lines.append(f"error    {run['error']}")
        table = [
            {
                "pipeline_id": _short(p["pipeline_id"]),
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

    _emit(args, data, text)
    return 0


def cmd_top(args: argparse.Namespace) -> int:
    from nirs4all_store.workbench.training.session import (
        SCORE_COLUMN,
        leaderboard_rows,
        metric_ascending,
    )

    with _open(args) as store:
        if args.run:
            run = _find_run(store, args.run)
            result = _run_result(store, run)
            table = result.top(
                args.n,
                partition=args.partition,
                fold_id=None if args.fold == "all" else args.fold,
                dataset_name=args.dataset,
                ascending=_order(args, result.metric),
            )
            metric = result.metric
        else:
            sample = store.query_predictions(partition=args.partition, limit=1).to_pylist()
            metric = args.metric or (sample[0]["metric"] if sample else "rmse")
            # Scores of different metrics do not compare: keep pipelines scored with `metric`.
            pipes = store.list_pipelines().to_pylist()
            filters: dict[str, Any] = {
                "pipeline_id": [p["pipeline_id"] for p in pipes if p["metric"] == metric]
            }
            if args.fold != "all":
                filters["fold_id"] = args.fold
            order = _order(args, metric)
            if not filters["pipeline_id"]:
                table = store.query_predictions(limit=0)
            else:
                table = store.top_predictions(
                    args.n,
                    metric=SCORE_COLUMN[args.partition],
                    ascending=metric_ascending(metric) if order is None else order,
                    partition=args.partition,
                    dataset_name=args.dataset,
                    **filters,
                )
    rows = table.to_pylist()
    _emit(
        args,
        rows,
        lambda: format_table(leaderboard_rows(table, metric)) if rows else "(no predictions)",
    )
    return 0


def _order(args: argparse.Namespace, metric: str) -> bool | None:
    return None if args.order is None else args.order == "asc"


def _out(path: str | None) -> Path | None:
    """Output paths on the command line are relative to the current folder."""
    return Path(path).expanduser().resolve() if path else None


def cmd_export_chain(args: argparse.Namespace) -> int:
    with _open(args) as store:
        if args.run:
            result = _run_result(store, _find_run(store, args.run))
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
        output = _out(args.output) or (store.exports_path() / f"{chain_id}.n4a")
        path = store.export_chain(chain_id, output)
    _emit(args, {"chain_id": chain_id, "bundle": str(path)}, f"exported chain {chain_id} to {path}")
    return 0


def cmd_export_predictions(args: argparse.Namespace) -> int:
    filters: dict[str, Any] = {}
    for name in ("dataset_name", "partition", "fold_id"):
        if getattr(args, name) is not None:
            filters[name] = getattr(args, name)
    with _open(args) as store:
        if args.run:
            filters["run_id"] = _find_run(store, args.run)["run_id"]
        output = _out(args.output) or (store.exports_path() / "predictions.parquet")
        path = store.export_predictions_parquet(output, include_arrays=args.arrays, **filters)
    _emit(args, {"parquet": str(path)}, f"wrote {path}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from nirs4all_store.workbench.bundle import load_bundle
    from nirs4all_store.workbench.training.datasets import DatasetError, _parse_table

    csv_path = Path(args.csv)
    if not csv_path.is_file():
        raise CliError(f"{csv_path}: no such file; expected a ;-separated CSV of spectra")
    bundle_path = Path(args.bundle)
    if not bundle_path.is_file():
        raise CliError(f"{bundle_path}: no such bundle file")
    try:
        X, _wavelengths, _ = _parse_table(csv_path, x_file=True)
    except DatasetError as exc:
        raise CliError(str(exc)) from None
    bundle = load_bundle(bundle_path)
    y_hat = np.asarray(bundle.predict(X))
    lines = "\n".join(repr(float(v)) for v in y_hat.reshape(len(y_hat), -1)[:, 0])
    if args.output:
        Path(args.output).write_text("y_pred\n" + lines + "\n", encoding="utf-8")
        _emit(
            args,
            {"predictions": str(args.output), "n": len(y_hat)},
            f"wrote {len(y_hat)} predictions to {args.output}",
        )
    else:
        _emit(args, {"predictions": y_hat.tolist()}, lines)
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    with _open(args) as store:
        out = store.gc_artifacts(grace_seconds=args.grace, dry_run=args.dry_run)
    if args.dry_run:
        _emit(args, {"would_remove": out}, f"would remove {len(out)} unreferenced artifact(s)")
    else:
        _emit(args, {"removed": out}, f"removed {out} unreferenced artifact(s)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    with _open(args) as store:
        report = store.verify(repair=args.repair)
    problems = {k: v for k, v in report.problems().items() if v}
    text = (
        "ok"
        if report.ok
        else "problems found:\n" + "\n".join(f"  {k}: {v}" for k, v in problems.items())
    )
    if args.repair:
        text += (
            f"\nrepaired {report.repaired_ref_counts} reference count(s), "
            f"removed {len(report.removed_orphans)} orphan file(s)"
        )
    _emit(
        args,
        {
            "ok": report.ok,
            "problems": problems,
            "repaired_ref_counts": report.repaired_ref_counts,
            "removed_orphans": report.removed_orphans,
        },
        text,
    )
    return 0 if report.ok else 1


def cmd_vacuum(args: argparse.Namespace) -> int:
    with _open(args) as store:
        info = store.vacuum()
    _emit(args, info, lambda: "vacuumed: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    return 0


def cmd_delete_run(args: argparse.Namespace) -> int:
    with _open(args) as store:
        run_id = _find_run(store, args.run_id)["run_id"]
        n = store.delete_run(run_id, delete_artifacts=not args.keep_artifacts)
    _emit(args, {"run_id": run_id, "rows_deleted": n}, f"deleted run {run_id} ({n} rows)")
    return 0


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
    with _open(args) as store:
        run = _find_run(store, args.run_id)
        path = write_report(store, run["run_id"], args.output, n_plots=args.plots)
    _emit(args, {"report": str(path)}, f"wrote {path}")
    return 0


# -- db -----------------------------------------------------------------------------------


def _db_engine(args: argparse.Namespace, *, create: bool) -> tuple[Any, str]:
    from nirs4all_store.db import engine as engines

    url = args.url or os.environ.get("NIRS4ALL_STORE_URL") or None
    if url is None:
        db_file = Path(args.workspace) / engines.DB_FILENAME
        if not create and not db_file.exists():
            raise CliError(
                f"no database at {db_file}: nothing to inspect (run a command that creates it)"
            )
        db_file.parent.mkdir(parents=True, exist_ok=True)
        url = engines.duckdb_url(db_file.resolve())
        where = str(db_file)
    else:
        where = engines.normalise_url(url).render_as_string(hide_password=True)
    return engines.create_store_engine(url), where


def cmd_db(args: argparse.Namespace) -> int:
    from nirs4all_store.db import migrate

    if args.db_command == "adopt":
        from nirs4all_store.legacy.adopt import adopt_legacy_workspace

        report = adopt_legacy_workspace(Path(args.workspace), dry_run=args.dry_run)
        _emit(
            args,
            {
                "status": report.status,
                "workspace": str(report.workspace),
                "rows": report.rows(),
                "backup": str(report.backup) if report.backup else None,
            },
            report.describe(),
        )
        return 0
    if args.db_command == "history":
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(migrate.alembic_config())
        revs = [
            {
                "revision": s.revision,
                "down_revision": s.down_revision,
                "head": s.revision == migrate.head_revision(),
                "message": (s.doc or "").strip(),
            }
            for s in script.walk_revisions()
        ]
        _emit(
            args,
            revs,
            lambda: format_table(
                revs, ["revision", "down_revision", "head", "message"], max_width=70
            ),
        )
        return 0
    engine, where = _db_engine(args, create=args.db_command == "upgrade")
    try:
        with engine.connect() as conn:
            before = migrate.current_revision(conn)
            tables = migrate.user_tables(conn) if before is None else []
        if args.db_command == "current":
            data = {"database": where, "current": before, "head": migrate.head_revision()}
            state = (
                "up to date"
                if before == migrate.head_revision()
                else ("empty" if before is None else "upgrade available")
            )
            _emit(
                args,
                data,
                f"{where}: revision {before or '(none)'} (head {migrate.head_revision()}, {state})",
            )
            return 0
        if before is None and tables:
            raise CliError(
                f"{where} holds tables {tables} without a nirs4all-store version: "
                f"if it is a legacy nirs4all workspace, run `{PROG} db adopt --workspace PATH`"
            )
        if args.db_command == "upgrade":
            migrate.upgrade(engine, args.revision)
        else:
            migrate.downgrade(engine, args.revision)
        with engine.connect() as conn:
            after = migrate.current_revision(conn)
    finally:
        engine.dispose()
    _emit(
        args,
        {"database": where, "before": before, "after": after},
        f"{where}: {args.db_command} {before or '(none)'} -> {after or '(none)'}",
    )
    return 0


# -- parser -------------------------------------------------------------------------------


def _common() -> argparse.ArgumentParser:
    """Options every command takes, before or after the command name."""
    p = argparse.ArgumentParser(add_help=False)
    S = argparse.SUPPRESS
    p.add_argument("--workspace", "-w", default=S, help="workspace folder (default ./workspace)")
    p.add_argument(
        "--url",
        default=S,
        help="database URL (sqlite:///..., postgresql://...); env NIRS4ALL_STORE_URL",
    )
    p.add_argument("--json", action="store_true", default=S, help="machine-readable JSON output")
    p.add_argument("--debug", action="store_true", default=S, help="show tracebacks on errors")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[common],
        description="NIRS machine-learning workspaces: train, query, export, predict, maintain.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help_text: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = add(
        "demo", cmd_demo, "synthetic NIR data, 9 pipelines, 5-fold CV, export and predict the best"
    )
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--wavelengths", type=int, default=500)
    p.add_argument("--cv", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)

    p = add("run", cmd_run, "train pipelines on nirs4all dataset folder(s)")
    p.add_argument(
        "--dataset",
        "-d",
        action="append",
        required=True,
        help="nirs4all folder (Xcal/Ycal[/Xval/Yval]); repeatable",
    )
    p.add_argument(
        "--pipeline",
        "-p",
        default="pls",
        help=f"template ({', '.join(TEMPLATE_SPECS)}) or a JSON/YAML spec file (default pls)",
    )
    p.add_argument("--name", default=None)
    p.add_argument("--cv", type=int, default=5)
    p.add_argument("--metric", default=None, help="rmse, mae, r2, accuracy, balanced_accuracy")
    p.add_argument("--task-type", choices=["regression", "classification"], default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", "-q", action="store_true", help="print only the run id")

    p = add("runs", cmd_runs, "list runs, newest first")
    p.add_argument("--status", choices=["running", "completed", "failed"], default=None)
    p.add_argument("--limit", type=int, default=50)

    p = add("show", cmd_show, "a run and its pipelines")
    p.add_argument("run_id", metavar="RUN_ID", help="run id or a unique prefix")

    p = add("top", cmd_top, "leaderboard of predictions")
    p.add_argument("--run", default=None, help="restrict to a run (id or prefix)")
    p.add_argument("-n", type=int, default=10)
    p.add_argument("--partition", choices=["val", "test", "train"], default="val")
    p.add_argument("--fold", default="avg", help="fold id (default avg: cross-validated), or 'all'")
    p.add_argument("--dataset", default=None)
    p.add_argument("--metric", default=None, help="only predictions scored with this metric")
    p.add_argument(
        "--order", choices=["asc", "desc"], default=None, help="default: by the metric's direction"
    )

    p = add("export-chain", cmd_export_chain, "write a chain as a portable .n4a bundle")
    p.add_argument("chain_id", metavar="CHAIN_ID", nargs="?", default=None)
    p.add_argument("--run", default=None, help="export the best chain of this run")
    p.add_argument("--prediction", default=None, help="export the chain of this prediction")
    p.add_argument("--output", "-o", default=None, help="bundle path (default exports/<chain>.n4a)")

    p = add("export-predictions", cmd_export_predictions, "write predictions to Parquet")
    p.add_argument("--output", "-o", default=None, help="default exports/predictions.parquet")
    p.add_argument("--run", default=None)
    p.add_argument("--dataset", dest="dataset_name", default=None)
    p.add_argument("--partition", default=None, choices=["train", "val", "test"])
    p.add_argument("--fold", dest="fold_id", default=None)
    p.add_argument("--arrays", action="store_true", help="include y_true/y_pred/y_proba")

    p = add("predict", cmd_predict, "predict spectra of a CSV file with a .n4a bundle")
    p.add_argument("bundle", metavar="BUNDLE")
    p.add_argument("csv", metavar="CSV", help=";-separated spectra, one per row, header optional")
    p.add_argument("--output", "-o", default=None, help="write predictions to a CSV file")

    p = add("gc", cmd_gc, "remove artifacts no chain references")
    p.add_argument(
        "--grace",
        type=float,
        default=3600.0,
        help="keep never-referenced artifacts younger than this (s)",
    )
    p.add_argument("--dry-run", action="store_true")

    p = add("verify", cmd_verify, "check reference counts, files and hashes (exit 1 on problems)")
    p.add_argument("--repair", action="store_true")

    add("vacuum", cmd_vacuum, "reclaim database space")

    p = add("delete-run", cmd_delete_run, "delete a run and everything under it")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--keep-artifacts", action="store_true")

    p = add("report", cmd_report, "self-contained HTML report of a run (needs matplotlib)")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--output", "-o", default="report.html")
    p.add_argument("--plots", type=int, default=3, help="number of best chains to plot")

    p = add("db", cmd_db, "schema migrations (Alembic) and legacy adoption")
    dbsub = p.add_subparsers(dest="db_command", metavar="DB_COMMAND")
    dbsub.required = True
    q = dbsub.add_parser("upgrade", parents=[common], help="migrate to a revision (default head)")
    q.add_argument("revision", nargs="?", default="head")
    dbsub.add_parser("current", parents=[common], help="the database's revision and the head")
    dbsub.add_parser("history", parents=[common], help="the known revisions")
    q = dbsub.add_parser("downgrade", parents=[common], help="migrate down to REVISION")
    q.add_argument("revision", metavar="REVISION")
    q = dbsub.add_parser("adopt", parents=[common], help="adopt a legacy nirs4all workspace")
    q.add_argument("--dry-run", action="store_true")
    return parser


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0] if isinstance(exc, (OSError,)) else " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 error, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, default in (
        ("workspace", DEFAULT_WORKSPACE),
        ("url", None),
        ("json", False),
        ("debug", False),
    ):
        if not hasattr(args, name):
            setattr(args, name, default)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except Exception as exc:
        if args.debug:
            raise
        kind = "" if isinstance(exc, CliError) else f"{type(exc).__name__}: "
        sys.stderr.write(f"{PROG}: error: {kind}{_message(exc)}\n")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
