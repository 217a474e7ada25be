"""matplotlib drawing of the figure dicts of `plots` (the static report's PNG images).

Only what `plots` builds is drawn: scatter (markers, lines, filled bands), heatmap with
counts, box; titles, axis titles, equal axes (`scaleanchor`) and the first annotation.
matplotlib is the optional `[plot]` extra; it is imported only here.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["draw_png"]

_TAG = re.compile(r"<br\s*/?>")


def _text(value: Any) -> str:
    if isinstance(value, Mapping):
        value = value.get("text", "")
    return _TAG.sub("\n", str(value or ""))


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display needed, never opens a window
    import matplotlib.pyplot as plt

    return plt


def _scatter(ax: Any, trace: Mapping[str, Any], previous: Mapping[str, Any] | None) -> None:
    x = np.asarray(trace.get("x", []), dtype=float)
    y = np.asarray(trace.get("y", []), dtype=float)
    mode = str(trace.get("mode", "markers"))
    label = trace.get("name") if trace.get("showlegend", True) else None
    line = trace.get("line") or {}
    marker = trace.get("marker") or {}
    if trace.get("fill") == "tonexty" and previous is not None:
        ax.fill_between(x, np.asarray(previous["y"], dtype=float), y, alpha=0.2, label=label)
        return
    if "lines" in mode and line.get("width", 1) > 0:
        style = "--" if line.get("dash") == "dash" else "-"
        ax.plot(x, y, style, color=line.get("color"), lw=line.get("width", 1.2), label=label)
    if "markers" in mode:
        ax.scatter(
            x,
            y,
            s=14,
            alpha=marker.get("opacity", 0.7),
            color=marker.get("color"),
            edgecolors="none",
            label=label,
        )


def _heatmap(ax: Any, trace: Mapping[str, Any]) -> None:
    z = np.asarray(trace["z"])
    ax.imshow(z, cmap="Blues")
    for (i, j), count in np.ndenumerate(z):
        colour = "white" if count > z.max() / 2 else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=colour)
    ax.set_xticks(range(len(trace["x"])), trace["x"])
    ax.set_yticks(range(len(trace["y"])), trace["y"])


def draw_png(figure: Mapping[str, Any], *, width: float, height: float, dpi: int) -> bytes:
    """PNG bytes of `figure` ({"data": traces, "layout": {...}})."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(width, height), dpi=dpi)
    try:
        layout = figure.get("layout") or {}
        previous = None
        boxes: list[tuple[str, list[float]]] = []
        for trace in figure.get("data") or []:
            kind = trace.get("type", "scatter")
            if kind == "heatmap":
                _heatmap(ax, trace)
            elif kind == "box":
                boxes.append((str(trace.get("name", "")), list(trace.get("y", []))))
            else:
                _scatter(ax, trace, previous)
            previous = trace
        if boxes:
            ax.boxplot([b[1] for b in boxes], tick_labels=[b[0] for b in boxes])
        ax.set_title(_text(layout.get("title")), fontsize=9)
        ax.set_xlabel(_text((layout.get("xaxis") or {}).get("title")))
        ax.set_ylabel(_text((layout.get("yaxis") or {}).get("title")))
        xaxis, yaxis = layout.get("xaxis") or {}, layout.get("yaxis") or {}
        if "range" in xaxis:
            ax.set_xlim(*xaxis["range"])
        if "range" in yaxis:
            ax.set_ylim(*yaxis["range"])
        if yaxis.get("scaleanchor") == "x":
            ax.set_aspect("equal")
        notes = layout.get("annotations") or []
        if notes:
            note = notes[0]
            ax.text(
                note.get("x", 0.02),
                note.get("y", 0.98),
                _text(note.get("text")),
                transform=ax.transAxes,
                fontsize=7,
                va=note.get("yanchor", "top"),
                ha=note.get("xanchor", "left"),
                bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
            )
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=7)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return buf.getvalue()
