"""Spectra of a run's dataset, when they can be found again (no store access here).

A run records each dataset's source (`datasets[i].path`) and content hash: a nirs4all folder
is read again, `synthetic_nirs(...)` is generated again from its recorded arguments (parsed
as literals, never evaluated), and the content hash says whether the data is still the
data the run saw. Preprocessed spectra apply the chain's fitted transformers (handed in by
`data.chain_transformers`).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import plots

__all__ = ["MAX_ROWS", "load_recorded", "sample_indices", "spectra_figures"]

MAX_ROWS = 2000  # spectra preprocessed for the mean (evenly spaced rows beyond that)
_SYNTHETIC_ARGS = {"n_samples", "n_wavelengths", "task", "n_classes", "seed", "test_fraction"}


def _synthetic_kwargs(source: str) -> dict[str, Any] | None:
    """The keyword arguments of a recorded 'synthetic_nirs(n_samples=..., ...)' source."""
    try:
        node = ast.parse(source.strip(), mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        return None
    if node.func.id != "synthetic_nirs" or node.args:
        return None
    kwargs = {}
    for kw in node.keywords:
        if kw.arg not in _SYNTHETIC_ARGS:
            return None
        try:
            kwargs[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            return None
    return kwargs


def load_recorded(entry: Mapping[str, Any]) -> tuple[Any | None, str]:
    """(Dataset or None, a sentence saying where the spectra come from or why they don't)."""
    import nirs4all_store as n4s

    source = str(entry.get("path") or "")
    name = str(entry.get("name") or "dataset")
    dataset = None
    try:
        kwargs = _synthetic_kwargs(source) if source.startswith("synthetic_nirs(") else None
        if kwargs is not None:
            dataset, where = n4s.synthetic_nirs(**kwargs), f"generated again: {source}"
        elif source and Path(source).is_dir():
            dataset, where = n4s.load_nirs4all_folder(source, name=name), f"folder {source}"
        else:
            shown = source or "none"
            return None, f"the spectra of {name!r} are not available (recorded source: {shown})"
    except (ValueError, OSError) as exc:
        return None, f"the spectra of {name!r} could not be read: {exc}"
    expected = entry.get("hash")
    if expected and dataset.content_hash != expected:
        where += " (WARNING: the data differs from what the run trained on: hash mismatch)"
    return dataset, where


def sample_indices(n_rows: int, n: int) -> np.ndarray:
    """`n` evenly spaced row indices (all rows when there are fewer)."""
    if n_rows <= n:
        return np.arange(n_rows)
    return np.unique(np.linspace(0, n_rows - 1, n).round().astype(int))


def _apply(transformers: Sequence[tuple[str, Any]], X: np.ndarray) -> np.ndarray:
    for _, step in transformers:
        X = np.asarray(step.transform(X), dtype=float)
    return X


def spectra_figures(
    dataset: Any, transformers: Sequence[tuple[str, Any]], n: int
) -> dict[str, plots.Figure]:
    """Mean +/- sd and a sample of `n` raw spectra; the same after the chain's preprocessing."""
    X = np.asarray(dataset.X_train, dtype=float)
    wl = dataset.wavelengths if dataset.wavelengths is not None else np.arange(X.shape[1])
    rows = sample_indices(X.shape[0], n)
    labels = [f"sample {i}" for i in rows]
    figures = {
        "mean_raw": plots.mean_spectrum_figure(
            wl, X.mean(axis=0), X.std(axis=0), f"mean raw spectrum ({X.shape[0]} spectra)"
        ),
        "sample_raw": plots.spectra_figure(
            wl, X[rows], labels, f"{len(rows)} raw spectra", "absorbance"
        ),
    }
    if transformers:
        names = " > ".join(name for name, _ in transformers)
        subset = X[sample_indices(X.shape[0], MAX_ROWS)]
        pre = _apply(transformers, subset)
        if pre.ndim == 2 and pre.shape[1] == X.shape[1]:
            x_axis = wl
        else:
            x_axis = np.arange(pre.shape[1] if pre.ndim == 2 else 0)
        figures["mean_pre"] = plots.mean_spectrum_figure(
            x_axis, pre.mean(axis=0), pre.std(axis=0), f"mean after {names}"
        )
        figures["sample_pre"] = plots.spectra_figure(
            x_axis, _apply(transformers, X[rows]), labels, f"{len(rows)} spectra after {names}"
        )
    return figures
