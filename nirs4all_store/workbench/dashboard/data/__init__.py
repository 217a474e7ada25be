"""The dashboard's read model: the only part of the web layer that talks to the store.

Everything goes through the public `WorkspaceStore` API (no SQL in the web layer):
`source` opens a store per request (`reader`) and closes it, and `reads` builds what the
pages need; counts and change tokens are the store's own calls (`store.count_runs()`, ...).
"""

from __future__ import annotations

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
    workspace_status,
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
    "compare",
    "export_bundle",
    "get_run",
    "leaderboard",
    "reader",
    "run_summary",
    "runs_page",
    "verify",
    "workspace_status",
]
