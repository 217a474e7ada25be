"""What each page shows, as plain data: the HTML pages render it, the /api/ routes return it.

Each view opens the store for one burst (`data.reader`), reads through `data`, closes it,
then builds figures (numpy only) after the workspace is released.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import plots
from . import data, shape
from . import spectra as spectra_mod
from .params import BadQuery, BoardQuery, choice, integer, page_args, text

__all__ = ["AppState", "NotFound"]


class NotFound(LookupError):
    """An unknown run, chain or dataset: a 404 page saying which."""


@dataclass
class AppState:
    source: data.Source
    last_verify: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _pages(total: int, page: int, per_page: int) -> dict[str, int]:
    return {
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": max(1, -(-total // per_page)),
    }


def token(state: AppState, query: Mapping[str, str]) -> dict[str, Any]:
    run_id = text(query, "run_id")
    with data.reader(state.source) as store:
        value = store.change_token(run_id)
    if value is None:
        raise NotFound(f"unknown run {run_id!r}")
    return {"token": value, "run_id": run_id}


def runs(state: AppState, query: Mapping[str, str]) -> dict[str, Any]:
    page, per_page = page_args(query)
    status = choice(query, "status", data.RUN_FILTERS)
    with data.reader(state.source) as store:
        found = data.runs_page(store, page=page, per_page=per_page, status=status)
        live_token = store.change_token()
    return {
        "runs": found["runs"],
        "paging": _pages(found["total"], page, per_page),
        "status": status,
        "token": live_token,
        "live": any(r["status"] == "running" for r in found["runs"]),
    }


def _board_query(query: Mapping[str, str]) -> BoardQuery:
    page, per_page = page_args(query)
    return BoardQuery(
        metric=text(query, "metric"),
        sort=choice(query, "sort", data.BOARD_SORTS, "score") or "score",
        order=choice(query, "order", ("asc", "desc")),
        dataset=text(query, "dataset"),
        model_class=text(query, "model_class"),
        preprocessing=text(query, "preprocessing"),
        page=page,
        per_page=per_page,
    )


def run(state: AppState, run_id: str, query: Mapping[str, str]) -> dict[str, Any]:
    q = _board_query(query)
    with data.reader(state.source) as store:
        found = data.get_run(store, run_id)
        if found is None:
            raise NotFound(f"unknown run {run_id!r}")
        board = data.leaderboard(store, found, q)
        live_token = store.change_token(run_id)
    groups = {
        f"#{i} {r['preprocessing'] or '-'} > {r['model_name']}": [f["score"] for f in r["folds"]]
        for i, r in enumerate(board["rows"][:12], start=(q.page - 1) * q.per_page + 1)
        if r["folds"]
    }
    figures = {}
    if groups:
        figures["folds"] = plots.fold_scores_figure(
            groups, board["metric"], f"cross-validation {board['metric']} per fold"
        )
    return {
        "run": found,
        "board": board,
        "query": q,
        "paging": _pages(board["total"], q.page, q.per_page),
        "token": live_token,
        "live": found["status"] == "running",
        "figures": figures,
        "args": {k: v for k, v in query.items() if k != "fragment"},
    }


def _series(raw: list[dict[str, Any]]) -> list[plots.Series]:
    return [
        plots.Series.of(s["label"], s["y_true"], s["y_pred"], s.get("sample_indices")) for s in raw
    ]


def chain(state: AppState, chain_id: str) -> dict[str, Any]:
    with data.reader(state.source) as store:
        found = data.chain_detail(store, chain_id)
        if found is None:
            raise NotFound(f"unknown chain {chain_id!r}")
        raw = data.chain_series(store, chain_id)
    found["figures"] = chain_figures(found, raw)
    found["series"] = [
        {
            "label": s["label"],
            "fold_id": s["fold_id"],
            "partition": s["partition"],
            "prediction_id": s["prediction_id"],
            "y_true": s["y_true"],
            "y_pred": s["y_pred"],
            "sample_indices": s.get("sample_indices"),
            "stats": plots.regression_stats(s["y_true"], s["y_pred"]),
        }
        for s in raw
    ]
    return found


def chain_figures(found: Mapping[str, Any], raw: list[dict[str, Any]]) -> dict[str, Any]:
    chain_row = found["chain"]
    title = f"{chain_row.get('preprocessings') or '-'} > {chain_row.get('model_name')}"
    series = _series(raw)
    figures: dict[str, Any] = {}
    if "classification" in str(chain_row.get("task_type") or ""):
        for s in series:
            key = "confusion" if not figures else f"confusion_{s.label.split()[0]}"
            figures[key] = plots.confusion_figure(s.y_true, s.y_pred, f"{title}: {s.label}")
    elif series:
        figures["pred_obs"] = plots.pred_obs_figure(series, f"{title}: predicted vs observed")
        figures["residuals"] = plots.residuals_figure(series, f"{title}: residuals")
    metric = chain_row.get("metric") or (found["metrics"] or ["score"])[0]
    folds: dict[str, list[float | None]] = {}
    for line in found["scores"]:
        if str(line["fold_id"]).startswith("fold_") and line["fold_id"] != "fold_final":
            folds.setdefault(str(line["partition"]), []).append(line["scores"].get(metric))
    if folds:
        figures["folds"] = plots.fold_scores_figure(folds, metric, f"{metric} per fold")
    return figures


def bundle(state: AppState, chain_id: str, path: Any) -> Any:
    with data.reader(state.source) as store:
        if data.chain_detail(store, chain_id) is None:
            raise NotFound(f"unknown chain {chain_id!r}")
        return data.export_bundle(store, chain_id, path)


def spectra(state: AppState, run_id: str, query: Mapping[str, str]) -> dict[str, Any]:
    n = integer(query, "n", 20, 1, 200)
    chain_id = text(query, "chain")
    with data.reader(state.source) as store:
        found = data.get_run(store, run_id)
        if found is None:
            raise NotFound(f"unknown run {run_id!r}")
        entries = [d for d in shape.decode(found.get("datasets")) or [] if isinstance(d, dict)]
        names = [str(d.get("name")) for d in entries]
        name = text(query, "dataset") or (names[0] if names else None)
        if name is None:
            raise NotFound(f"run {run_id!r} recorded no dataset")
        if name not in names:
            raise BadQuery(f"dataset must be one of {names} for this run, got {name!r}")
        entry = entries[names.index(name)]
        chain_id = chain_id or data.best_chain(store, found, name)
        dataset, where = spectra_mod.load_recorded(entry)
        steps: list[tuple[str, Any]] = []
        if dataset is not None and chain_id:
            try:
                steps = data.chain_transformers(store, chain_id)
            except KeyError:
                raise NotFound(f"unknown chain {chain_id!r}") from None
    figures = spectra_mod.spectra_figures(dataset, steps, n) if dataset is not None else {}
    return {
        "run": found,
        "datasets": names,
        "dataset": name,
        "chain_id": chain_id,
        "source_note": where,
        "available": dataset is not None,
        "steps": [s for s, _ in steps],
        "figures": figures,
    }


def compare(state: AppState, query: Mapping[str, str]) -> dict[str, Any]:
    page, per_page = page_args(query, default_per_page=10)
    family = text(query, "family")
    with data.reader(state.source) as store:
        found = data.compare(store, page=page, per_page=per_page)
    runs_ = found["runs"]
    metrics = sorted({m for r in runs_ for m in shape.metrics_of(r["chains"][:1])})
    metric = text(query, "metric") or (runs_[0]["metric"] if runs_ else "rmse")
    if runs_ and metric not in metrics:
        raise BadQuery(f"metric must be one of {metrics}, got {metric!r}")
    table, datasets, best_of = shape.best_table(runs_, metric)
    families = sorted({shape.family_of(c) for r in runs_ for c in r["chains"]})
    if family is not None and family not in families:
        raise BadQuery(f"family {family!r} is not among the chains of these runs")
    figures, trend = {}, []
    if family is not None:
        trend = shape.family_trend(runs_, family, metric)
        traces = []
        for ds in sorted({t["dataset"] for t in trend}):
            pts = [t for t in trend if t["dataset"] == ds]
            when = [t["run"]["created_at"].strftime("%Y-%m-%d %H:%M:%S") for t in pts]
            traces.append((ds, when, [t["score"] for t in pts], [t["run"]["name"] for t in pts]))
        prep, _, model = family.partition("|")
        figures["trend"] = plots.trend_figure(traces, f"{prep or '-'} > {model}", metric)
    return {
        "table": table,
        "datasets": datasets,
        "best_of": best_of,
        "metric": metric,
        "metrics": metrics,
        "families": families,
        "family": family,
        "trend": trend,
        "figures": figures,
        "paging": _pages(found["total"], page, per_page),
    }


def workspace(state: AppState) -> dict[str, Any]:
    with data.reader(state.source) as store:
        status = data.workspace_status(store)
        recorded = store.last_verify()  # the last verify() of a writable store (CLI, code)
    latest = state.last_verify  # the one run from this dashboard (read-only: not recorded)
    if latest is None or (recorded is not None and recorded["checked_at"] > latest["checked_at"]):
        latest = recorded
    return {
        "status": status,
        "verify": latest,
        "workspace": str(state.source.workspace),
        "url": state.source.url,
    }


def run_verify(state: AppState) -> dict[str, Any]:
    with state.lock, data.reader(state.source) as store:
        result = data.verify(store)
    state.last_verify = result
    return result
