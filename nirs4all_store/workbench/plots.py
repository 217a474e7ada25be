"""Figures of a workspace, shared by the dashboard and the static HTML report.

Every builder is a pure function returning a Plotly figure as a plain dict
(``{"data": [...], "layout": {...}}``): the dashboard serialises it with `to_json` and
plotly.js draws it in the browser; the static report draws the same dict into a PNG with
`figure_png` (matplotlib, the `[plot]` extra). Neither plotly nor matplotlib is imported to
build a figure, so the builders cost only numpy.

Statistics of predicted against observed values (`regression_stats`):
RMSE, R2, bias (mean of predicted - observed) and RPD (standard deviation of the observed
values over the RMSE).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Figure = dict[str, Any]

__all__ = [
    "PARTITION_COLOURS",
    "Figure",
    "Series",
    "accuracy",
    "confusion_figure",
    "confusion_matrix",
    "figure_png",
    "fold_scores_figure",
    "format_number",
    "mean_spectrum_figure",
    "pred_obs_figure",
    "regression_stats",
    "residuals_figure",
    "spectra_figure",
    "stats_text",
    "to_json",
    "to_plain",
    "trend_figure",
]

PARTITION_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
_FONT = {"family": "system-ui, sans-serif", "size": 12}


@dataclass(frozen=True)
class Series:
    """Observed and predicted values of one partition (float arrays of one length)."""

    label: str
    y_true: np.ndarray
    y_pred: np.ndarray
    sample_indices: np.ndarray | None = None

    @classmethod
    def of(cls, label: str, y_true: Any, y_pred: Any, sample_indices: Any = None) -> Series:
        y = np.asarray(y_true, dtype=float).reshape(-1)
        p = np.asarray(y_pred, dtype=float).reshape(-1)
        if y.shape != p.shape:
            raise ValueError(f"{label}: y_true has {y.size} values but y_pred has {p.size}")
        idx = None if sample_indices is None else np.asarray(sample_indices).reshape(-1)
        if idx is not None and idx.shape != y.shape:
            idx = None  # indices of another length are not this series' samples
        return cls(label, y, p, idx)

    @property
    def indices(self) -> np.ndarray:
        """Sample indices shown on hover (row positions when none were stored)."""
        return np.arange(self.y_true.size) if self.sample_indices is None else self.sample_indices


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def regression_stats(y_true: Any, y_pred: Any) -> dict[str, float | int | None]:
    """n, RMSE, R2, bias (mean predicted - observed) and RPD (SD observed / RMSE)."""
    y = np.asarray(y_true, dtype=float).reshape(-1)
    p = np.asarray(y_pred, dtype=float).reshape(-1)
    if y.size == 0:
        return {"n": 0, "rmse": None, "r2": None, "bias": None, "rpd": None}
    residual = p - y
    rmse = float(np.sqrt(np.mean(residual**2)))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / ss_tot if ss_tot > 0 else float("nan")
    sd = float(np.std(y, ddof=1)) if y.size > 1 else float("nan")
    rpd = sd / rmse if rmse > 0 else float("nan")
    return {
        "n": int(y.size),
        "rmse": _finite(rmse),
        "r2": _finite(r2),
        "bias": _finite(float(residual.mean())),
        "rpd": _finite(rpd),
    }


def accuracy(y_true: Any, y_pred: Any) -> float | None:
    y, p = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y == p)) if y.size else None


def format_number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def stats_text(stats: Mapping[str, Any]) -> str:
    """'RMSE 0.344, R2 0.988, bias -0.0012, RPD 9.2' (missing values as '-')."""
    return (
        f"RMSE {format_number(stats.get('rmse'))}, R2 {format_number(stats.get('r2'), 3)}, "
        f"bias {format_number(stats.get('bias'), 3)}, RPD {format_number(stats.get('rpd'), 3)}"
    )


def _layout(title: str, x_title: str, y_title: str, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "title": {"text": title, "font": {"size": 13}, "x": 0.01, "xanchor": "left"},
        "xaxis": {"title": {"text": x_title}, "zeroline": False},
        "yaxis": {"title": {"text": y_title}, "zeroline": False},
        "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
        "legend": {"orientation": "h", "y": -0.2},
        "font": _FONT,
        "hovermode": "closest",
    }
    layout.update(extra)
    return layout


def _range(series: Sequence[Series]) -> tuple[float, float]:
    values = np.concatenate([np.concatenate([s.y_true, s.y_pred]) for s in series])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    pad = (hi - lo) * 0.05 or 1.0
    return lo - pad, hi + pad


def _points(s: Series, x: np.ndarray, y: np.ndarray, colour: str, y_name: str) -> dict[str, Any]:
    return {
        "type": "scatter",
        "mode": "markers",
        "name": s.label,
        "x": x,
        "y": y,
        "customdata": s.indices,
        "marker": {"size": 7, "opacity": 0.75, "color": colour},
        "hovertemplate": (
            "sample %{customdata}<br>observed %{x:.4g}<br>" + y_name + " %{y:.4g}<extra>"
            f"{s.label}</extra>"
        ),
    }


def pred_obs_figure(series: Sequence[Series], title: str = "") -> Figure:
    """Predicted against observed, the 1:1 line, one colour per series, stats annotated."""
    if not series:
        return {"data": [], "layout": _layout(title or "no predictions", "observed", "predicted")}
    lo, hi = _range(series)
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": "1:1",
            "x": [lo, hi],
            "y": [lo, hi],
            "line": {"dash": "dash", "color": "#666", "width": 1},
            "hoverinfo": "skip",
        }
    ]
    notes = []
    for s, colour in zip(series, PARTITION_COLOURS, strict=False):
        data.append(_points(s, s.y_true, s.y_pred, colour, "predicted"))
        notes.append(f"{s.label}: {stats_text(regression_stats(s.y_true, s.y_pred))}")
    axis = {"range": [lo, hi]}
    layout = _layout(title, "observed", "predicted")
    layout["xaxis"].update(axis)
    layout["yaxis"].update(axis, scaleanchor="x", scaleratio=1)
    layout["annotations"] = [_note("<br>".join(notes), corner="bottom right")]
    return {"data": data, "layout": layout}


def _note(text: str, corner: str = "top left") -> dict[str, Any]:
    vertical, horizontal = corner.split()
    return {
        "text": text,
        "xref": "paper",
        "yref": "paper",
        "x": 0.99 if horizontal == "right" else 0.01,
        "y": 0.01 if vertical == "bottom" else 0.99,
        "xanchor": horizontal,
        "yanchor": vertical,
        "showarrow": False,
        "align": "left",
        "font": {"size": 11},
        "bgcolor": "rgba(255,255,255,0.8)",
    }


def residuals_figure(series: Sequence[Series], title: str = "") -> Figure:
    """Residuals (predicted - observed) against observed values, with the zero line."""
    data: list[dict[str, Any]] = []
    for s, colour in zip(series, PARTITION_COLOURS, strict=False):
        data.append(_points(s, s.y_true, s.y_pred - s.y_true, colour, "residual"))
    if series:
        lo, hi = _range(series)
        data.insert(
            0,
            {
                "type": "scatter",
                "mode": "lines",
                "name": "0",
                "x": [lo, hi],
                "y": [0.0, 0.0],
                "line": {"dash": "dash", "color": "#666", "width": 1},
                "hoverinfo": "skip",
            },
        )
    return {"data": data, "layout": _layout(title, "observed", "residual (predicted - observed)")}


def confusion_matrix(y_true: Any, y_pred: Any) -> tuple[list[Any], np.ndarray]:
    """(sorted classes, counts[observed, predicted])."""
    y, p = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    classes = np.unique(np.concatenate([y, p]))
    index = {c: i for i, c in enumerate(classes.tolist())}
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    for t, q in zip(y.tolist(), p.tolist(), strict=True):
        matrix[index[t], index[q]] += 1
    return classes.tolist(), matrix


def _class_label(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def confusion_figure(y_true: Any, y_pred: Any, title: str = "") -> Figure:
    """The confusion matrix as an annotated heatmap (rows observed, columns predicted)."""
    classes, matrix = confusion_matrix(y_true, y_pred)
    labels = [_class_label(c) for c in classes]
    trace = {
        "type": "heatmap",
        "z": matrix,
        "x": labels,
        "y": labels,
        "colorscale": "Blues",
        "texttemplate": "%{z}",
        "hovertemplate": "observed %{y}<br>predicted %{x}<br>%{z} sample(s)<extra></extra>",
        "showscale": False,
    }
    acc = accuracy(y_true, y_pred)
    if acc is not None:
        title = f"{title} (accuracy {acc:.3f})" if title else f"accuracy {acc:.3f}"
    layout = _layout(title, "predicted", "observed")
    layout["xaxis"].update(type="category")
    layout["yaxis"].update(type="category", autorange="reversed")
    return {"data": [trace], "layout": layout}


def fold_scores_figure(
    groups: Mapping[str, Sequence[float | None]], metric: str, title: str = ""
) -> Figure:
    """One box (with its points) per group of fold scores: the spread across folds."""
    data = []
    for (name, values), colour in zip(groups.items(), _cycle(len(groups)), strict=False):
        ys = [v for v in values if v is not None]
        data.append(
            {
                "type": "box",
                "name": name,
                "y": ys,
                "boxpoints": "all",
                "jitter": 0.3,
                "marker": {"color": colour},
                "hovertemplate": f"{name}<br>{metric} %{{y:.4g}}<extra></extra>",
            }
        )
    layout = _layout(title, "", metric, showlegend=False)
    return {"data": data, "layout": layout}


def _cycle(n: int) -> list[str]:
    return [PARTITION_COLOURS[i % len(PARTITION_COLOURS)] for i in range(n)]


def spectra_figure(
    wavelengths: Any, spectra: Any, labels: Sequence[str], title: str = "", y_title: str = ""
) -> Figure:
    """One line per spectrum (rows of `spectra`) over the wavelengths."""
    x = np.asarray(wavelengths, dtype=float)
    data = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": label,
            "x": x,
            "y": np.asarray(row, dtype=float),
            "line": {"width": 1},
            "hovertemplate": f"{label}<br>%{{x:.1f}}: %{{y:.4g}}<extra></extra>",
        }
        for row, label in zip(spectra, labels, strict=True)
    ]
    return {"data": data, "layout": _layout(title, "wavelength", y_title, showlegend=False)}


def mean_spectrum_figure(
    wavelengths: Any, mean: Any, std: Any, title: str = "", y_title: str = ""
) -> Figure:
    """The mean spectrum with a band of plus/minus one standard deviation."""
    x = np.asarray(wavelengths, dtype=float)
    m, s = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    band = {"type": "scatter", "mode": "lines", "line": {"width": 0}, "hoverinfo": "skip"}
    data = [
        {**band, "name": "mean - sd", "x": x, "y": m - s, "showlegend": False},
        {
            **band,
            "name": "mean +/- sd",
            "x": x,
            "y": m + s,
            "fill": "tonexty",
            "fillcolor": "rgba(31,119,180,0.2)",
        },
        {
            "type": "scatter",
            "mode": "lines",
            "name": "mean",
            "x": x,
            "y": m,
            "line": {"color": PARTITION_COLOURS[0], "width": 2},
        },
    ]
    return {"data": data, "layout": _layout(title, "wavelength", y_title)}


def trend_figure(
    traces: Sequence[tuple[str, Sequence[Any], Sequence[float | None], Sequence[str]]],
    title: str = "",
    y_title: str = "",
) -> Figure:
    """Lines with markers (name, x, y, hover text): a score over runs."""
    data = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": name,
            "x": list(x),
            "y": list(y),
            "text": list(text),
            "hovertemplate": "%{text}<br>%{y:.4g}<extra>" + name + "</extra>",
        }
        for name, x, y, text in traces
    ]
    return {"data": data, "layout": _layout(title, "run", y_title)}


def to_plain(value: Any) -> Any:
    """JSON-safe copy: numpy to lists, NaN and infinities to null."""
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return to_plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return _finite(float(value))
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def to_json(figure: Any) -> str:
    """Strict JSON (no NaN) of a figure or any structure holding numpy values."""
    return json.dumps(to_plain(figure), separators=(",", ":"), allow_nan=False)


def figure_png(figure: Figure, *, width: float = 5.2, height: float = 5.0, dpi: int = 96) -> bytes:
    """Draw a figure of this module with matplotlib (the static report's images)."""
    from ._plots_mpl import draw_png

    return draw_png(figure, width=width, height=height, dpi=dpi)
