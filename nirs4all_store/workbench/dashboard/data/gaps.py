"""STORE-GAP: calls the dashboard needs that the store lacks today (NOTES.md lists them).

Each function uses the store's method when it has one (`getattr`) and otherwise a fallback
over existing public calls; the fallbacks go once the store gains the methods.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nirs4all_store import WorkspaceStore

from .. import shape
from .source import lookup, rows_of

__all__ = [
    "change_token",
    "count_pipelines",
    "count_predictions",
    "count_runs",
    "facets",
    "last_verify",
    "runs_with_display_status",
    "workspace_status",
]


def count_runs(store: WorkspaceStore, status: str | None = None) -> int:
    """STORE-GAP `count_runs(status=None, name=None) -> int`."""
    method = getattr(store, "count_runs", None)
    if callable(method):
        return int(method(status=status))
    return store.list_runs(status=status, limit=None).num_rows


def count_pipelines(
    store: WorkspaceStore, run_id: str | None = None, status: str | None = None
) -> int:
    """STORE-GAP `count_pipelines(run_id=None, dataset_name=None, status=None) -> int`."""
    method = getattr(store, "count_pipelines", None)
    if callable(method):
        return int(method(run_id=run_id, status=status))
    return store.list_pipelines(run_id=run_id, status=status).num_rows


def count_predictions(store: WorkspaceStore, run_id: str | None = None, **filters: Any) -> int:
    """STORE-GAP `count_predictions(*, run_id=None, **filters) -> int`."""
    method = getattr(store, "count_predictions", None)
    if callable(method):
        return int(method(run_id=run_id, **filters))
    return store.query_predictions(run_id=run_id, **filters).num_rows


def change_token(store: WorkspaceStore, run_id: str | None = None) -> str | None:
    """STORE-GAP `change_token(run_id=None) -> str`: changes whenever what the runs page (or
    the run's page) shows changes. None for an unknown run."""
    method = getattr(store, "change_token", None)
    if callable(method):
        token = method(run_id=run_id)
        return None if token is None else str(token)
    if run_id is not None:
        run = lookup(store.get_run, run_id)
        if run is None:
            return None
        parts: list[Any] = [run["status"], run.get("completed_at"), count_pipelines(store, run_id)]
    else:
        runs = rows_of(store.list_runs(limit=50))
        parts = [(r["run_id"], r["status"], r.get("completed_at")) for r in runs]
        parts += [count_pipelines(store, r["run_id"]) for r in runs if r["status"] == "running"]
    return hashlib.sha1(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def _file_size(path: Path | None) -> int | None:
    if path is None:
        return None
    sizes = [p.stat().st_size for p in (path, path.with_name(path.name + ".wal")) if p.exists()]
    return sum(sizes) if sizes else None


def _revision(store: WorkspaceStore) -> str | None:
    try:
        from nirs4all_store.db import migrate

        with store.engine.connect() as conn:
            return migrate.current_revision(conn)
    except Exception:
        return None


def workspace_status(store: WorkspaceStore) -> dict[str, Any]:
    """STORE-GAP `status() -> dict` (backend, schema revision, sizes, counts)."""
    method = getattr(store, "status", None)
    if callable(method):
        found = dict(method())
        return {
            **found,
            "database": found["url"],
            "db_file": str(store.db_file) if store.db_file else None,
            "db_bytes": found["database_bytes"],
            "artifacts_path": str(store.artifacts_path),
            "counts": {
                **found["counts"],
                "runs_running": count_runs(store, "running"),
                "pipelines_failed": count_pipelines(store, status="failed"),
            },
        }
    artifacts = store.list_artifacts()
    sizes = [s for s in artifacts.column("size_bytes").to_pylist() if s is not None]
    return {
        "backend": store.url.get_backend_name(),
        "database": store.url.render_as_string(hide_password=True),
        "db_file": str(store.db_file) if store.db_file else None,
        "db_bytes": _file_size(store.db_file),
        "schema_revision": _revision(store),
        "artifacts_path": str(store.artifacts_path),
        "artifact_bytes": sum(sizes),
        "counts": {
            "runs": count_runs(store),
            "runs_running": count_runs(store, "running"),
            "pipelines": count_pipelines(store),
            "pipelines_failed": count_pipelines(store, status="failed"),
            "predictions": count_predictions(store),
            "artifacts": artifacts.num_rows,
        },
    }


def last_verify(store: WorkspaceStore) -> dict[str, Any] | None:
    """STORE-GAP `last_verify() -> dict | None` (None: the dashboard shows its own last check)."""
    method = getattr(store, "last_verify", None)
    return method() if callable(method) else None


def runs_with_display_status(store: WorkspaceStore, status: str) -> list[dict[str, Any]]:
    """STORE-GAP run status 'interrupted': stored as 'failed' today, told apart by its error
    (all failed runs are read, then split)."""
    rows = rows_of(store.list_runs(status="failed", limit=None))
    older = [r for r in rows if shape.display_status(r) == status]
    if status != "interrupted":
        return older
    # The store reports a run whose process died as 'interrupted' (heartbeat, revision 0006).
    return rows_of(store.list_runs(status="interrupted", limit=None)) + older


def facets(store: WorkspaceStore, run: Mapping[str, Any], where: dict[str, Any]) -> dict:
    """Filter choices, from the run's recorded config (no scan) when `run()` recorded it,
    else STORE-GAP `distinct_values(column, *, run_id=None, **filters) -> list`."""
    found = shape.facets_from_config(run)
    if found is not None:
        return found
    rows = rows_of(store.query_predictions(run_id=run["run_id"], **where))
    return {
        "datasets": sorted({r["dataset_name"] for r in rows}),
        "model_classes": sorted({r["model_class"] for r in rows}),
        "preprocessings": sorted({r.get("preprocessings") or "" for r in rows}),
    }
