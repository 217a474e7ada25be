"""A self-contained HTML report of a run: leaderboard and predicted-vs-observed plots.

The scatter of predicted against observed values (1:1 line, RMSE and R2 in the title) is
what chemometricians look at first. Images are PNGs embedded as base64, so the page is one
file that can be mailed or archived. matplotlib is an optional extra (`[plot]`).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from nirs4all_store.durable import atomic_write
from nirs4all_store.store import WorkspaceStore
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
    matplotlib.use("Agg", force=True)  # no display needed, never opens a window
    import matplotlib.pyplot as plt

    return plt


def _scatter_png(plt: Any, series: list[tuple[str, np.ndarray, np.ndarray]], title: str) -> str:
    """A predicted-vs-observed PNG (base64) with the 1:1 line; one colour per partition."""
    fig, ax = plt.subplots(figsize=(5.2, 5.0), dpi=96)
    try:
        lo = min(float(min(y.min(), p.min())) for _, y, p in series)
        hi = max(float(max(y.max(), p.max())) for _, y, p in series)
        pad = (hi - lo) * 0.05 or 1.0
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.4", lw=1, ls="--", label="1:1")
        for (label, y, p), colour in zip(series, ("#1f77b4", "#d62728", "#2ca02c"), strict=False):
            ax.scatter(y, p, s=14, alpha=0.7, color=colour, label=label, edgecolors="none")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel("observed")
        ax.set_ylabel("predicted")
        ax.set_title(title, fontsize=9)
        ax.legend(loc="upper left", fontsize=8)
        ax.set_aspect("equal")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _confusion_png(plt: Any, y: np.ndarray, p: np.ndarray, title: str) -> str:
    """A confusion matrix PNG (base64) of out-of-fold predictions, for classification runs."""
    classes = np.unique(np.concatenate([y, p]))
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    for t, q in zip(y, p, strict=True):
        matrix[index[t], index[q]] += 1
    fig, ax = plt.subplots(figsize=(5.0, 4.6), dpi=96)
    try:
        ax.imshow(matrix, cmap="Blues")
        for (i, j), count in np.ndenumerate(matrix):
            colour = "white" if count > matrix.max() / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=colour)
        labels = [format_value(float(c), 3).rstrip("0").rstrip(".") for c in classes]
        ax.set_xticks(range(len(classes)), labels)
        ax.set_yticks(range(len(classes)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("observed")
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _rmse_r2(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    rmse = float(np.sqrt(np.mean((y - p) ** 2)))
    ss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum((y - p) ** 2)) / ss if ss > 0 else float("nan")
    return rmse, r2


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


def _prediction_series(
    store: WorkspaceStore, best: dict[str, Any], classification: bool
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label with its score, observed, predicted) of the chain's fold-avg val and test."""
    series = []
    for partition in ("val", "test"):
        found = store.query_predictions(
            chain_id=best["chain_id"], fold_id="avg", partition=partition, limit=1
        ).to_pylist()
        if not found:
            continue
        pred = store.get_prediction(found[0]["prediction_id"], load_arrays=True) or {}
        y, p = pred.get("y_true"), pred.get("y_pred")
        if y is None or p is None or len(y) == 0:
            continue
        y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
        label = "cross-validation (out-of-fold)" if partition == "val" else "test (mean of folds)"
        if classification:
            acc = float(np.mean(y == p))
            series.append((f"{label}: accuracy {acc:.3f}", y, p))
        else:
            rmse, r2 = _rmse_r2(y, p)
            series.append((f"{label}: RMSE {rmse:.4g}, R2 {r2:.3f}", y, p))
    return series


def _figure_html(store: WorkspaceStore, plt: Any, best: dict[str, Any]) -> str | None:
    """The `<figure>` of one leaderboard row, None when it has no arrays to plot."""
    classification = "classification" in str(best.get("task_type") or "")
    series = _prediction_series(store, best, classification)
    if not series:
        return None
    model = f"{best.get('preprocessings') or '-'} > {best['model_name']}"
    if classification:
        title = f"{model}\n{best['dataset_name']}: {series[0][0]}"
        png = _confusion_png(plt, series[0][1], series[0][2], title)
    else:
        rmse, r2 = _rmse_r2(series[0][1], series[0][2])
        title = f"{model}\n{best['dataset_name']}: RMSE {rmse:.4g}, R2 {r2:.3f}"
        png = _scatter_png(plt, series, title)
    caption = "; ".join(s[0] for s in series)
    return (
        f'<figure><img alt="predicted vs observed, {html.escape(model)}" '
        f'src="data:image/png;base64,{png}"><figcaption>{html.escape(model)} '
        f"(chain {html.escape(str(best['chain_id']))}): {html.escape(caption)}"
        "</figcaption></figure>"
    )


def _page_html(
    run: dict[str, Any],
    run_id: str,
    metric: str,
    n_pipelines: int,
    n_failed: int,
    rows: list[dict[str, Any]],
    figures: list[str],
) -> str:
    """The report page: run facts, the leaderboard table and the figures."""
    cv = (run.get("config") or {}).get("cv", "?")
    order = "lower is better" if metric_ascending(metric) else "higher is better"
    created = run.get("created_at")
    created_text = (
        created.isoformat(sep=" ", timespec="seconds") if isinstance(created, dt.datetime) else ""
    )
    datasets = ", ".join(
        str(d.get("name")) for d in (run.get("datasets") or []) if isinstance(d, dict)
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>nirs4all-store run {html.escape(str(run["name"]))}</title><style>{_CSS}</style></head>
<body>
<h1>Run {html.escape(str(run["name"]))}</h1>
<p>run_id {html.escape(run_id)} &middot; status {html.escape(str(run["status"]))} &middot;
created {html.escape(created_text)} &middot; datasets {html.escape(datasets)} &middot;
{n_pipelines} pipeline(s), {n_failed} failed &middot; {cv}-fold cross-validation</p>
<h2>Leaderboard (cross-validated {html.escape(metric)}, {order})</h2>
{_table_html(rows)}
<h2>Predicted vs observed</h2>
<div class="plots">{"".join(figures) or "<p>No predictions with arrays to plot.</p>"}</div>
</body></html>
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
    plt = _pyplot()
    run = store.get_run(run_id)
    if run is None:
        raise KeyError(f"unknown run_id {run_id!r}")
    config = run.get("config") or {}
    metric = config.get("metric") or "rmse"
    pipelines = store.list_pipelines(run_id=run_id)
    ids = pipelines.column("pipeline_id").to_pylist()
    result = RunResult(run_id=run_id, store=store, metric=metric, pipeline_ids=ids)
    top = result.top(n_rows)
    rows = leaderboard_rows(top, metric)
    figures = []
    for best in top.to_pylist()[:n_plots]:
        figure = _figure_html(store, plt, best)
        if figure is not None:
            figures.append(figure)
    n_failed = sum(1 for s in pipelines.column("status").to_pylist() if s == "failed")
    page = _page_html(run, run_id, metric, len(ids), n_failed, rows, figures)
    path = Path(output_path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, page.encode("utf-8"))
    return path
