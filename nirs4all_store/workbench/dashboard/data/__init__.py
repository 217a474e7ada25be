"""The dashboard's read model: the only part of the web layer that talks to the store.

Everything goes through the public `WorkspaceStore` API (no SQL in the web layer):
`source` opens a store per request (`reader`) and closes it, `reads` builds what the pages
need, and `gaps` holds every call the store lacks today (marked ``STORE-GAP``: the store's
method when it has one, else a fallback over existing public calls; NOTES.md lists the
wanted signatures).
"""

from __future__ import annotations

from .gaps import (
    change_token,
    count_pipelines,
    count_predictions,
    count_runs,
    last_verify,
    workspace_status,
)
from .reads import (
    BOARD_SORTS,
    RUN_FILTERS,
    best_chain,
    chain_detail,
    chain_series,
    chain_transformers,
    compare,
    export_bundle,
    get_run,
    leaderboard,
    run_summary,
    runs_page,
    verify,
)
from .source import Source, WorkspaceBusy, reader

__all__ = [
    "BOARD_SORTS",
    "RUN_FILTERS",
    "Source",
    "WorkspaceBusy",
    "best_chain",
    "chain_detail",
    "chain_series",
    "chain_transformers",
    "change_token",
    "compare",
    "count_pipelines",
    "count_predictions",
    "count_runs",
    "export_bundle",
    "get_run",
    "last_verify",
    "leaderboard",
    "reader",
    "run_summary",
    "runs_page",
    "verify",
    "workspace_status",
]
