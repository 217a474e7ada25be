"""Store access for the commands: opening the workspace (refusing one that does not exist)
and finding runs, pipelines, chains and predictions by id or unique id prefix."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from nirs4all_store import WorkspaceStore
from nirs4all_store.cli.errors import PROG, CliError
from nirs4all_store.db import engine as engines
from nirs4all_store.repositories import (
    ChainRepository,
    PipelineRepository,
    RunRepository,
)

if TYPE_CHECKING:
    from nirs4all_store import RunResult

DEFAULT_WORKSPACE = "workspace"
#: The commands that create a workspace; every other one refuses a missing one.
CREATING = ("demo", "run", "db upgrade")
#: Candidates listed for an ambiguous prefix.
MAX_CANDIDATES = 10

_TABLES: dict[str, tuple[sa.Table, str]] = {
    "run": (RunRepository.table, "run_id"),
    "pipeline": (PipelineRepository.table, "pipeline_id"),
    "chain": (ChainRepository.table, "chain_id"),
    # PredictionRepository has no `table` attribute: a lightweight table of the one column.
    "prediction": (sa.table("predictions", sa.column("prediction_id")), "prediction_id"),
}


def store_url(args: argparse.Namespace) -> str | None:
    """`--url`, else the NIRS4ALL_STORE_URL environment variable, else None."""
    return args.url or os.environ.get("NIRS4ALL_STORE_URL") or None


def _workspaces_near(path: Path) -> list[Path]:
    """Existing workspaces beside `path` and in the current folder (for a "did you mean")."""
    found: dict[Path, None] = {}
    for folder in (path.parent, Path.cwd()):
        if (folder / engines.DB_FILENAME).is_file():
            found[folder.resolve()] = None
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir())
        except OSError:
            continue
        for child in children:
            if (child / engines.DB_FILENAME).is_file():
                found[child.resolve()] = None
    return list(found)


def missing_workspace_message(path: Path) -> str:
    """`no workspace at PATH`, the nearest existing workspace if any, and what creates one."""
    near = _workspaces_near(path)
    names = {str(p): p for p in near}
    close = difflib.get_close_matches(str(path), list(names), n=1, cutoff=0.0)
    hint = f" Did you mean --workspace {close[0]}?" if close else ""
    return (
        f"no workspace at {path} (no {engines.DB_FILENAME} there).{hint} "
        f"Only `{PROG} demo`, `run` and `db upgrade` create a workspace."
    )


def _check_exists(args: argparse.Namespace, url: str | None) -> bool:
    """True when the workspace's database exists; for a server URL, assumed true."""
    if url is None:
        return (Path(args.workspace).expanduser() / engines.DB_FILENAME).is_file()
    db_file = engines.database_file(engines.normalise_url(url))
    return db_file is None or db_file.is_file()


def require_workspace(args: argparse.Namespace) -> None:
    """CliError when the workspace of `--workspace` / `--url` does not exist."""
    url = store_url(args)
    if _check_exists(args, url):
        return
    if url is None:
        raise CliError(missing_workspace_message(Path(args.workspace).expanduser().resolve()))
    shown = engines.normalise_url(url).render_as_string(hide_password=True)
    raise CliError(f"no database at {shown}; only `{PROG} demo`, `run` and `db upgrade` create one")


def open_store(args: argparse.Namespace, *, create: bool = False) -> WorkspaceStore:
    """The workspace of `--workspace` / `--url`.

    Commands that only read refuse a workspace that does not exist (a typo once created an
    empty one and reported "(no runs)"); `create=True` (demo, run) creates it and says so on
    stderr.
    """
    url = store_url(args)
    exists = _check_exists(args, url)
    if not exists and not create:
        require_workspace(args)
    store = WorkspaceStore(args.workspace, url=url)
    if not exists:
        where = store.path if url is None else engines.normalise_url(url).render_as_string(True)
        sys.stderr.write(f"{PROG}: created a new workspace at {where}\n")
    return store


def find_id(store: WorkspaceStore, kind: str, prefix: str) -> str:
    """The full id of a run/pipeline/chain/prediction from its id or a unique prefix.

    The tables print 8-character prefixes; every one is accepted back. An unknown prefix or
    an ambiguous one (the candidates listed) is a CliError. One indexed query (`LIKE 'p%'`
    on the id cast to text: prediction ids are native UUIDs on DuckDB).
    """
    table, column = _TABLES[kind]
    text = prefix.strip()
    if not text:
        raise CliError(f"empty {kind} id")
    col = table.c[column]
    pattern = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    as_text = sa.cast(col, sa.String)
    query = (
        sa.select(as_text)
        .where(sa.or_(as_text.like(pattern, escape="\\"), as_text.like(pattern.lower(), "\\")))
        .order_by(as_text)
        .limit(MAX_CANDIDATES + 1)
    )
    with store.transaction() as session:
        found = list(dict.fromkeys(str(v) for v in session.execute(query).scalars()))
    if text in found or text.lower() in found:
        return text if text in found else text.lower()
    if not found:
        raise CliError(
            f"unknown {kind} {text!r}: no {kind} id starts with it (see `{PROG} {_SEE[kind]}`)"
        )
    if len(found) > 1:
        more = " ..." if len(found) > MAX_CANDIDATES else ""
        raise CliError(
            f"{kind} prefix {text!r} is ambiguous: {', '.join(found[:MAX_CANDIDATES])}{more}; "
            "give more characters"
        )
    return found[0]


_SEE = {"run": "runs", "pipeline": "show RUN_ID", "chain": "top", "prediction": "top"}


def find_run(store: WorkspaceStore, prefix: str) -> dict[str, Any]:
    """A run by id or unique id prefix."""
    run = store.get_run(find_id(store, "run", prefix))
    if run is None:  # pragma: no cover - deleted between the two reads
        raise CliError(f"unknown run {prefix!r}: see `{PROG} runs`")
    return run


def run_result(store: WorkspaceStore, run: dict[str, Any]) -> RunResult:
    """A `RunResult` over a recorded run (its leaderboard, best chain, export)."""
    from nirs4all_store.workbench.training import RunResult

    metric = (run.get("config") or {}).get("metric") or "rmse"
    ids = store.list_pipelines(run_id=run["run_id"]).column("pipeline_id").to_pylist()
    return RunResult(run_id=run["run_id"], store=store, metric=metric, pipeline_ids=ids)
