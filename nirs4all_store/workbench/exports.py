"""Exports of workspace content: predictions to Parquet, runs to YAML, configs to JSON.

Every export checks its ids before touching the disk (KeyError for an unknown id and no
file left behind), creates parent folders, and writes atomically: into a temporary file
in the target folder, then `os.replace`, so a reader never sees a half-written file. A
relative path is relative to the current folder, as for `predict()`, `open()` and the CLI's
`--output` (a bare name once went to `exports/`, so `export("m.n4a")` then `predict("m.n4a")`
failed); the absolute path written is returned.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml  # a dependency (pyproject), not an optional extra

from nirs4all_store.durable import atomic_target
from nirs4all_store.repositories import PredictionRepository
from nirs4all_store.validation import FILTERS, check_id

if TYPE_CHECKING:
    from nirs4all_store.store import WorkspaceStore


def resolve_output(
    store: WorkspaceStore, output_path: str | os.PathLike[str], suffix: str | None = None
) -> Path:
    """Absolute target path (relative to the current folder); `suffix` added when missing."""
    if not isinstance(output_path, (str, os.PathLike)):
        raise TypeError(f"output_path must be a path, got {type(output_path).__name__}")
    raw = os.fspath(output_path)
    if not raw or raw.endswith(("/", os.sep)):
        raise ValueError(f"output_path must name a file, got {raw!r}")
    path = Path(raw).expanduser()
    if suffix is not None and not path.suffix:
        path = path.with_name(path.name + suffix)
    if path.exists() and path.is_dir():
        raise IsADirectoryError(f"output_path {path} is a folder; give a file name")
    return path.resolve()


_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def export_file_name(identifier: str, suffix: str) -> str:
    """A file name made from a stored id that stays in its folder whatever the id holds
    (a chain id `../../X` once made an export write outside the workspace)."""
    name = _UNSAFE_NAME_CHARS.sub("_", str(identifier)).lstrip(".")[:120] or "export"
    return name + suffix


def _check_filters(filters: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    flt = dict(filters)
    run_id = flt.pop("run_id", None)
    bad = [name for name in flt if name not in FILTERS]
    if bad:
        raise ValueError(
            f"unknown prediction filter(s) {bad}; expected some of {list(FILTERS)} or run_id"
        )
    if run_id is not None:
        check_id("run_id", run_id)
    return run_id, flt


def export_predictions_parquet(
    store: WorkspaceStore,
    output_path: str | os.PathLike[str],
    include_arrays: bool = False,
    **filters: Any,
) -> Path:
    """Write the predictions matching `filters` (those of `query_predictions`) to Parquet.

    Columns and types are those of `query_predictions` (JSON as text, timestamps UTC);
    `include_arrays=True` adds y_true, y_pred (list<double>) and y_proba (list<list<double>>).
    DuckDB streams the result with `COPY ... TO (FORMAT parquet)`; other backends go
    through pyarrow. An empty result is a valid Parquet file with the full schema.
    """
    run_id, flt = _check_filters(filters)
    path = resolve_output(store, output_path, ".parquet")
    with store.transaction() as session:
        PredictionRepository(session).export_parquet(
            path, flt, run_id=run_id, include_arrays=include_arrays
        )
    return path


# -- runs and pipeline configs ------------------------------------------------------------
def _plain(value: Any) -> Any:
    """YAML-safe plain data: datetimes as ISO text, numpy scalars as Python numbers."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (bytes, np.ndarray)):
        return None  # no arrays or binaries in a run export
    return value


def export_run(store: WorkspaceStore, run_id: str, output_path: str | os.PathLike[str]) -> Path:
    """Write a run with its pipelines and chains as YAML (`yaml.safe_load` reads it back).

    No arrays or binaries: chains name their artifacts by id. Uses PyYAML's safe dumper,
    whose quoting of ambiguous strings ("yes", "1e5", "null") a hand emitter would have to
    reimplement.
    """
    from nirs4all_store.store import WorkspaceStore as Arrow  # not at import: a cycle

    check_id("run_id", run_id)
    with store.transaction():
        run = store.get_run(run_id)
        if run is None:
            raise KeyError(f"unknown run_id {run_id!r}")
        pipelines = []
        # The base class's Arrow listings: a subclass (the nirs4all adapter) returns polars.
        listed = Arrow.list_pipelines(store, run_id=run_id)
        for pipeline_id in listed.column("pipeline_id").to_pylist():
            pipeline = store.get_pipeline(pipeline_id) or {}
            chains = Arrow.get_chains_for_pipeline(store, pipeline_id)
            chain_ids = chains.column("chain_id").to_pylist()
            pipeline["chains"] = [store.get_chain(cid) for cid in chain_ids]
            pipelines.append(pipeline)
    document = {
        "format": "nirs4all-store run export",
        "format_version": 1,
        "run": _plain(run),
        "pipelines": _plain(pipelines),
    }
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)
    path = resolve_output(store, output_path, ".yaml")
    with atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def export_pipeline_config(
    store: WorkspaceStore, pipeline_id: str, output_path: str | os.PathLike[str]
) -> Path:
    """Write a pipeline's expanded config as JSON (ready to re-run or to save as a template)."""
    check_id("pipeline_id", pipeline_id)
    pipeline = store.get_pipeline(pipeline_id)
    if pipeline is None:
        raise KeyError(f"unknown pipeline_id {pipeline_id!r}")
    text = json.dumps(_plain(pipeline["expanded_config"]), indent=2, allow_nan=False)
    path = resolve_output(store, output_path, ".json")
    with atomic_target(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return path
