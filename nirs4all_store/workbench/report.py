"""A self-contained HTML report of a run: leaderboard and predicted-vs-observed plots.

The scatter of predicted against observed values (1:1 line, RMSE and R² in the title, the
target's name on the axes) is what chemometricians look at first. Images are PNGs drawn at
DPI (200) and shown at their nominal size, so they stay sharp on high-density screens and in
print, embedded as base64: the page is one file that can be mailed or archived. matplotlib
is an optional extra (`[plot]`).

The figures are those of the dashboard: `nirs4all_store.workbench.plots` builds them (same
series, 1:1 line, RMSE/R2/bias/RPD) and `plots.figure_png` draws them with matplotlib.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import os
from pathlib import Path
from typing import Any

from nirs4all_store.durable import atomic_write
from nirs4all_store.store import WorkspaceStore
from nirs4all_store.workbench import plots
from nirs4all_store.workbench.progress import format_value
from nirs4all_store.workbench.training.metrics import metric_ascending
from nirs4all_store.workbench.training.result import RunResult, leaderboard_rows

__all__ = ["PlotDependencyError", "require_matplotlib", "write_report"]

INSTALL_HINT = "the report needs matplotlib: pip install nirs4all-store[plot]"


class PlotDependencyError(ImportError):
    """matplotlib is missing; the message says how to install it."""


def require_matplotlib() -> None:
    """Raise `PlotDependencyError` (saying how to install it) when matplotlib is missing."""
    _pyplot()


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotDependencyError(INSTALL_HINT) from None
    return matplotlib


#: Resolution of the report's PNGs (plots' default, 96, looked blurred on a 2x screen).
DPI = 200
#: Width at which a figure is shown, in CSS pixels (its nominal size at 96 dpi).
SHOWN_WIDTH_PX = 500


def _png(figure: plots.Figure, width: float = 5.2, height: float = 5.0) -> str:
    """A figure of `plots` as a base64 PNG (drawn by matplotlib at `DPI`)."""
    data = plots.figure_png(figure, width=width, height=height, dpi=DPI)
    return base64.b64encode(data).decode("ascii")


def _r2(text: str) -> str:
    """plots' ASCII "R2" as the R² readers expect."""
    return text.replace("R2 ", "R² ")


def target_name(run: dict[str, Any], dataset_name: str) -> str:
    """What was predicted: the dataset's recorded target name, else the dataset's name."""
    for d in run.get("datasets") or []:
        if isinstance(d, dict) and d.get("name") == dataset_name:
            for key in ("target", "target_name", "y_name"):
                if d.get(key):
                    return str(d[key])
    return str(dataset_name)


def _label_axes(figure: plots.Figure, target: str) -> None:
    layout = figure["layout"]
    layout["xaxis"]["title"] = {"text": f"observed {target}"}
    layout["yaxis"]["title"] = {"text": f"predicted {target}"}


_LABELS = {"val": "cross-validation (out-of-fold)", "test": "test (mean of folds)"}


def _series(store: WorkspaceStore, chain_id: str) -> list[plots.Series]:
    """The chain's out-of-fold and fold-average test predictions with their arrays."""
    series = []
    for partition in ("val", "test"):
        found = store.query_predictions(
            chain_id=chain_id, fold_id="avg", partition=partition, limit=1
        ).to_pylist()
        if not found:
            continue
        pred = store.get_prediction(found[0]["prediction_id"], load_arrays=True) or {}
        y, p = pred.get("y_true"), pred.get("y_pred")
        if y is None or p is None or len(y) == 0:
            continue
        series.append(plots.Series.of(_LABELS[partition], y, p, pred.get("sample_indices")))
    return series


def _figure_html(store: WorkspaceStore, best: dict[str, Any], target: str) -> str | None:
    """One <figure> of the report: the dashboard's figure of the chain, as a PNG."""
    series = _series(store, str(best["chain_id"]))
    if not series:
        return None
    model = f"{best.get('preprocessings') or '-'} > {best['model_name']}"
    if "classification" in str(best.get("task_type") or ""):
        notes = [f"{s.label}: accuracy {plots.accuracy(s.y_true, s.y_pred):.3f}" for s in series]
        first = series[0]
        title = f"{model}<br>{best['dataset_name']}, {first.label}"
        png = _png(plots.confusion_figure(first.y_true, first.y_pred, title), 5.0, 4.6)
    else:
        stats = [plots.regression_stats(s.y_true, s.y_pred) for s in series]
        notes = [
            f"{s.label}: {_r2(plots.stats_text(st))}" for s, st in zip(series, stats, strict=True)
        ]
        title = (
            f"{model}<br>{best['dataset_name']}: RMSE {plots.format_number(stats[0]['rmse'])}, "
            f"R² {plots.format_number(stats[0]['r2'], 3)}"
        )
        figure = plots.pred_obs_figure(series, title)
        figure["layout"].pop("annotations", None)  # the caption below says the same
        _label_axes(figure, target)
        png = _png(figure)
    caption = "; ".join(notes)
    return (
        f'<figure><img alt="predicted vs observed, {html.escape(model)}" '
        f'width="{SHOWN_WIDTH_PX}" src="data:image/png;base64,{png}">'
        f"<figcaption>{html.escape(model)} "
        f"(chain {html.escape(str(best['chain_id']))}): {html.escape(caption)}"
        "</figcaption></figure>"
    )


def _with_test_scores(
    store: WorkspaceStore, run_id: str, top: Any, rows: list[dict[str, Any]], metric: str
) -> list[dict[str, Any]]:
    """The leaderboard rows with a `test <metric>` column (before the ids) when there is one:
    the refit model's (`fold_final`, what a bundle predicts with), else the fold models' mean."""
    by_chain: dict[Any, Any] = {}
    for fold_id in ("fold_final", "avg"):
        tests = store.query_predictions(run_id=run_id, fold_id=fold_id, partition="test")
        by_chain = {t["chain_id"]: t["test_score"] for t in tests.to_pylist()}
        if by_chain:
            break
    if not by_chain:
        return rows
    out = []
    for row, full in zip(rows, top.to_pylist(), strict=False):
        ids = {k: row.pop(k) for k in ("chain_id", "prediction_id") if k in row}
        out.append({**row, f"test {metric}": by_chain.get(full["chain_id"]), **ids})
    return out


def _table_html(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>No completed pipeline.</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_value(r.get(c)))}</td>" for c in cols) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f0f0f0} .plots{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0} figcaption{font-size:12px;color:#555;max-width:500px}
"""


def write_report(
    store: WorkspaceStore,
    run_id: str,
    output_path: str | os.PathLike[str],
    *,
    n_plots: int = 3,
    n_rows: int = 20,
) -> Path:
    """Write the HTML report of `run_id` to `output_path`; returns the path.

    KeyError for an unknown run; `PlotDependencyError` without matplotlib (checked before
    anything is read or written).
    """
    _pyplot()
    run = store.get_run(run_id)
    if run is None:
        raise KeyError(f"unknown run_id {run_id!r}")
    config = run.get("config") or {}
    metric = config.get("metric") or "rmse"
    pipelines = store.list_pipelines(run_id=run_id)
    ids = pipelines.column("pipeline_id").to_pylist()
    result = RunResult(run_id=run_id, store=store, metric=metric, pipeline_ids=ids)
    top = result.top(n_rows)
    rows = _with_test_scores(store, run_id, top, leaderboard_rows(top, metric), metric)
    best_rows = top.to_pylist()[:n_plots]
    figures = [
        f
        for f in (_figure_html(store, b, target_name(run, b["dataset_name"])) for b in best_rows)
        if f
    ]
    n_failed = sum(1 for s in pipelines.column("status").to_pylist() if s == "failed")
    order = "lower is better" if metric_ascending(metric) else "higher is better"
    created = run.get("created_at")
    created_text = (
        created.isoformat(sep=" ", timespec="seconds") if isinstance(created, dt.datetime) else ""
    )
    datasets = ", ".join(
        str(d.get("name")) for d in (run.get("datasets") or []) if isinstance(d, dict)
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>nirs4all-store report: {html.escape(str(run["name"]))}</title><style>{_CSS}</style>
</head>
<body>
<h1>Report: {html.escape(str(run["name"]))}</h1>
<p>run_id {html.escape(run_id)} &middot; status {html.escape(str(run["status"]))} &middot;
created {html.escape(created_text)} &middot; datasets {html.escape(datasets)} &middot;
{len(ids)} pipeline(s), {n_failed} failed &middot; {config.get("cv", "?")}-fold cross-validation</p>
<h2>Leaderboard (cross-validated {html.escape(metric)}, {order}; test: on the held-out
spectra, by the refit model a bundle exports)</h2>
{_table_html(rows)}
<h2>Predicted vs observed</h2>
<div class="plots">{"".join(figures) or "<p>No predictions with arrays to plot.</p>"}</div>
</body></html>
"""
    path = Path(output_path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, page.encode("utf-8"))
    return path
