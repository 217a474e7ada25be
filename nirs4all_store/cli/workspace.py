"""Store access for the commands: opening the workspace and finding runs."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from nirs4all_store import WorkspaceStore
from nirs4all_store.cli.errors import PROG, CliError
from nirs4all_store.validation import check_id

if TYPE_CHECKING:
    from nirs4all_store import RunResult

DEFAULT_WORKSPACE = "workspace"


def store_url(args: argparse.Namespace) -> str | None:
    """`--url`, else the NIRS4ALL_STORE_URL environment variable, else None."""
    return args.url or os.environ.get("NIRS4ALL_STORE_URL") or None


def open_store(args: argparse.Namespace) -> WorkspaceStore:
    """The workspace of `--workspace` / `--url`."""
    return WorkspaceStore(args.workspace, url=store_url(args))


def run_row(store: WorkspaceStore, run_id: str) -> dict[str, Any]:
    """The run with this full id; CliError for a malformed or unknown id."""
    try:
        check_id("run_id", run_id)
    except (TypeError, ValueError) as exc:
        raise CliError(str(exc)) from None
    run = store.get_run(run_id)
    if run is None:
        raise CliError(f"unknown run {run_id!r}: see `{PROG} runs`")
    return run


def find_run(store: WorkspaceStore, prefix: str) -> dict[str, Any]:
    """A run by id or unique id prefix (the tables print 8-character prefixes)."""
    if len(prefix) >= 36:
        return run_row(store, prefix)
    runs = [r for r in store.list_runs(limit=None).to_pylist() if r["run_id"].startswith(prefix)]
    if not runs:
        raise CliError(f"unknown run {prefix!r}: see `{PROG} runs`")
    if len(runs) > 1:
        raise CliError(
            f"run prefix {prefix!r} is ambiguous ({len(runs)} runs); give more characters"
        )
    return store.get_run(runs[0]["run_id"])


def run_result(store: WorkspaceStore, run: dict[str, Any]) -> RunResult:
    """A `RunResult` over a recorded run (its leaderboard, best chain, export)."""
    from nirs4all_store.workbench.training import RunResult

    metric = (run.get("config") or {}).get("metric") or "rmse"
    ids = store.list_pipelines(run_id=run["run_id"]).column("pipeline_id").to_pylist()
    return RunResult(run_id=run["run_id"], store=store, metric=metric, pipeline_ids=ids)
