"""The read model: what the pages need, over the public `WorkspaceStore` API (no SQL)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nirs4all_store import WorkspaceStore

from .. import shape
from ..params import BadQuery, BoardQuery
from .source import lookup, rows_of

RUN_FILTERS = ("running", "completed", "failed", "interrupted")
BOARD_SORTS = ("score", "refit_test", "fold_sd", "dataset", "preprocessing", "model")

# -- runs ----------------------------------------------------------------------------------


def _best_cv(store: WorkspaceStore, run: Mapping[str, Any]) -> float | None:
    _, ascending = shape.run_direction(run)
    top = rows_of(
        store.top_predictions(
            1, ascending=ascending, partition="val", run_id=run["run_id"], fold_id="avg"
        )
    )
    return top[0]["val_score"] if top else None


def run_summary(store: WorkspaceStore, row: Mapping[str, Any]) -> dict[str, Any]:
    """What the runs table shows of one run (counts from the summary, else counted)."""
    summary = shape.decode(row.get("summary")) or {}
    n_pipelines, n_failed, best = None, None, None
    if isinstance(summary, dict) and row.get("status") == "completed":
        n_pipelines, n_failed = summary.get("pipelines"), summary.get("failed")
        best = (summary.get("best") or {}).get("val_score")
    if n_pipelines is None:
        n_pipelines = store.count_pipelines(row["run_id"])
        n_failed = store.count_pipelines(row["run_id"], status="failed")
    if best is None:
        best = _best_cv(store, row)
    return shape.run_row(row, n_pipelines, n_failed or 0, best)


def runs_page(
    store: WorkspaceStore, *, page: int, per_page: int, status: str | None
) -> dict[str, Any]:
    """One page of runs, newest first, with their total (paged in SQL when the store can)."""
    offset = (page - 1) * per_page
    if status in ("failed", "interrupted"):
        rows = _runs_with_display_status(store, status)
        total, rows = len(rows), rows[offset : offset + per_page]
    else:
        total = store.count_runs(status)
        rows = rows_of(store.list_runs(status=status, limit=per_page, offset=offset))
    return {"total": total, "runs": [run_summary(store, r) for r in rows]}


def get_run(store: WorkspaceStore, run_id: str) -> dict[str, Any] | None:
    run = lookup(store.get_run, run_id)
    if run is None:
        return None
    run["display_status"] = shape.display_status(run)
    run["counts"] = {
        "pipelines": store.count_pipelines(run_id),
        "failed": store.count_pipelines(run_id, status="failed"),
        "running": store.count_pipelines(run_id, status="running"),
    }
    run["duration_ms"] = shape.run_duration_ms(run)
    failed = rows_of(store.list_pipelines(run_id=run_id, status="failed", limit=100))
    run["failed_pipelines"] = [
        {k: p.get(k) for k in ("pipeline_id", "name", "dataset_name", "error", "created_at")}
        for p in failed
    ]
    return run


def _runs_with_display_status(store: WorkspaceStore, status: str) -> list[dict[str, Any]]:
    """Runs shown as `status` ('failed' or 'interrupted'): run() records a run stopped by an
    exception (Ctrl-C) with `fail_run`, as 'failed' with the error "interrupted: ..."
    (training/session.py `_abort_run`), so failed runs are read and split; the store's own
    'interrupted' status is a run whose process died (no heartbeat)."""
    rows = rows_of(store.list_runs(status="failed", limit=None))
    older = [r for r in rows if shape.display_status(r) == status]
    if status != "interrupted":
        return older
    return rows_of(store.list_runs(status="interrupted", limit=None)) + older


def workspace_status(store: WorkspaceStore) -> dict[str, Any]:
    """`store.status()` with what the workspace page also shows (paths, running/failed)."""
    found = store.status()
    return {
        **found,
        "database": found["url"],
        "db_file": str(store.db_file) if store.db_file else None,
        "db_bytes": found["database_bytes"],
        "artifacts_path": str(store.artifacts_path),
        "counts": {
            **found["counts"],
            "runs_running": store.count_runs("running"),
            "pipelines_failed": store.count_pipelines(status="failed"),
        },
    }


# -- leaderboard ---------------------------------------------------------------------------


def leaderboard(store: WorkspaceStore, run: Mapping[str, Any], q: BoardQuery) -> dict[str, Any]:
    """The run's chains (one avg/val prediction each), sorted, filtered and paged."""
    run_metric, _ = shape.run_direction(run)
    where = {"fold_id": "avg", "partition": "val"}
    probe = rows_of(store.query_predictions(run_id=run["run_id"], limit=1, **where))
    metrics = shape.metrics_of(probe) or [run_metric]
    metric = q.metric or run_metric
    if metric not in metrics:
        raise BadQuery(f"metric must be one of {metrics} for this run, got {metric!r}")
    choices = _facets(store, run, where)
    flt = {
        **where,
        "dataset_name": q.dataset,
        "model_class": q.model_class,
        "preprocessings": q.preprocessing,
    }
    ascending = shape.metric_ascending(metric) if q.sort in ("score", "refit_test") else True
    if q.order is not None:
        ascending = q.order == "asc"
    offset = (q.page - 1) * q.per_page
    total = store.count_predictions(run_id=run["run_id"], **flt)
    if q.sort == "score" and metric == run_metric:  # ranked and paged in SQL
        rest = {k: v for k, v in flt.items() if k not in ("partition", "dataset_name")}
        top = rows_of(
            store.top_predictions(
                offset + q.per_page,
                ascending=ascending,
                partition="val",
                dataset_name=q.dataset,
                run_id=run["run_id"],
                **rest,
            )
        )[offset:]
        details = _details(store, [r["chain_id"] for r in top], metric)
        rows = [shape.board_row(r, details.get(r["chain_id"]), metric) for r in top]
    else:  # top_predictions ranks by a score column only, without offset: ranked here, paged
        every = rows_of(store.query_predictions(run_id=run["run_id"], **flt))
        details = _details(store, [r["chain_id"] for r in every], metric)
        rows = [shape.board_row(r, details.get(r["chain_id"]), metric) for r in every]
        rows = shape.sort_rows(rows, q.sort, ascending)[offset : offset + q.per_page]
    return {
        "rows": rows,
        "total": total,
        "metric": metric,
        "metrics": metrics,
        "run_metric": run_metric,
        "ascending": ascending,
        "facets": choices,
    }


def _facets(store: WorkspaceStore, run: Mapping[str, Any], where: dict[str, Any]) -> dict:
    """Filter choices, from the run's recorded config (no scan) when `run()` recorded it,
    else read from the run's rows (the store has no distinct-values call)."""
    found = shape.facets_from_config(run)
    if found is not None:
        return found
    rows = rows_of(store.query_predictions(run_id=run["run_id"], **where))
    return {
        "datasets": sorted({r["dataset_name"] for r in rows}),
        "model_classes": sorted({r["model_class"] for r in rows}),
        "preprocessings": sorted({r.get("preprocessings") or "" for r in rows}),
    }


def _details(store: WorkspaceStore, chain_ids: list[str | None], metric: str) -> dict:
    ids = [c for c in chain_ids if c]
    if not ids:
        return {}
    return shape.chain_scores(rows_of(store.query_predictions(chain_id=ids)), metric)


# -- chains --------------------------------------------------------------------------------


def chain_detail(store: WorkspaceStore, chain_id: str) -> dict[str, Any] | None:
    """The chain, its pipeline and run, its artifacts and its scores per fold and partition."""
    chain = lookup(store.get_chain, chain_id)
    if chain is None:
        return None
    pipeline = store.get_pipeline(chain["pipeline_id"]) or {}
    run = store.get_run(pipeline["run_id"]) if pipeline.get("run_id") else None
    artifacts = []
    for aid, role in shape.artifact_roles(chain).items():
        row = store.get_artifact(aid) or {"artifact_id": aid, "missing": True}
        artifacts.append({**row, "roles": role})
    predictions = rows_of(store.query_predictions(chain_id=chain_id))
    metrics = shape.metrics_of(predictions)
    return {
        "chain": chain,
        "pipeline": pipeline,
        "run": run,
        "artifacts": artifacts,
        "metrics": metrics,
        "scores": shape.score_grid(predictions, metrics),
    }


#: (fold_id, partition, label) of the series drawn on the chain page, in order.
SERIES = (
    ("avg", "val", "cross-validation (out-of-fold)"),
    ("fold_final", "test", "test (refit model)"),
)


def chain_series(store: WorkspaceStore, chain_id: str) -> list[dict[str, Any]]:
    """The stored arrays of the chain's out-of-fold and refit-test predictions."""
    out = []
    for fold_id, partition, label in SERIES:
        found = rows_of(
            store.query_predictions(
                chain_id=chain_id, fold_id=fold_id, partition=partition, limit=1
            )
        )
        if not found:
            continue
        pred = store.get_prediction(found[0]["prediction_id"], load_arrays=True) or {}
        if pred.get("y_true") is None or pred.get("y_pred") is None:
            continue
        out.append({"label": label, "fold_id": fold_id, "partition": partition, **pred})
    return out


def export_bundle(store: WorkspaceStore, chain_id: str, path: Path) -> Path:
    return Path(store.export_chain(chain_id, path))


def best_chain(store: WorkspaceStore, run: Mapping[str, Any], dataset: str) -> str | None:
    _, ascending = shape.run_direction(run)
    top = rows_of(
        store.top_predictions(
            1, ascending=ascending, dataset_name=dataset, run_id=run["run_id"], fold_id="avg"
        )
    )
    return top[0]["chain_id"] if top else None


def chain_transformers(store: WorkspaceStore, chain_id: str) -> list[tuple[str, Any]]:
    """The chain's fitted preprocessing steps, in order (loading runs pickled code: the
    workspace must be trusted, as for replay)."""
    chain = lookup(store.get_chain, chain_id)
    if chain is None:
        raise KeyError(chain_id)
    shared = chain.get("shared_artifacts") or {}
    steps = sorted(chain.get("steps") or [], key=lambda s: s.get("step_idx", 0))
    out = []
    for step in steps:
        idx = int(step.get("step_idx", 0))
        if idx >= int(chain.get("model_step_idx", len(steps))):
            break
        aid = shared.get(str(idx)) or step.get("artifact_id")
        if aid:
            name = str(step.get("operator_class", "step")).rsplit(".", 1)[-1]
            out.append((name, store.load_artifact(aid)))
    if out or shared:
        return out
    return refit_pipeline_steps(store, chain)


def refit_pipeline_steps(store: WorkspaceStore, chain: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """run() stores each fold's whole fitted scikit-learn Pipeline (honest CV: no shared
    preprocessing): the preprocessing is the refit (`fold_final`) pipeline's steps before
    its model (else the first fold's)."""
    folds = chain.get("fold_artifacts") or {}
    aid = folds.get("fold_final") or next(iter(folds.values()), None)
    if isinstance(aid, list):
        aid = aid[0] if aid else None
    if not aid:
        return []
    fitted = store.load_artifact(aid)
    steps = getattr(fitted, "steps", None)
    if not steps:
        return []
    return [(type(step).__name__, step) for _, step in steps[:-1] if step != "passthrough"]


# -- compare -------------------------------------------------------------------------------


def compare(store: WorkspaceStore, *, page: int, per_page: int) -> dict[str, Any]:
    """Per run of the page: its best chain per dataset (SQL) and its chain families."""
    offset = (page - 1) * per_page
    runs = rows_of(store.list_runs(limit=per_page, offset=offset))
    out = []
    for run in runs:
        metric, ascending = shape.run_direction(run)
        best = rows_of(
            store.top_predictions(
                1,
                ascending=ascending,
                partition="val",
                group_by="dataset_name",
                run_id=run["run_id"],
                fold_id="avg",
            )
        )
        # One avg/val row per chain (the store has no distinct-values call to narrow it).
        chains = rows_of(
            store.query_predictions(run_id=run["run_id"], fold_id="avg", partition="val")
        )
        out.append(
            {"run": run, "metric": metric, "ascending": ascending, "best": best, "chains": chains}
        )
    return {"total": store.count_runs(), "runs": out}


def verify(store: WorkspaceStore) -> dict[str, Any]:
    """`verify()` without repair (reads rows and files, writes nothing), as plain data."""
    start = time.perf_counter()
    report = store.verify(repair=False)
    return {
        "ok": bool(report.ok),
        "problems": {k: v for k, v in report.problems().items() if v},
        "checked_at": dt.datetime.now(dt.timezone.utc),
        "duration_s": time.perf_counter() - start,
    }
