"""The `db` subcommands: schema migrations (upgrade, current, history, downgrade) and the
adoption of legacy nirs4all workspaces."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from nirs4all_store.cli.errors import PROG, CliError
from nirs4all_store.cli.output import confirm, emit
from nirs4all_store.cli.workspace import store_url
from nirs4all_store.workbench.progress import format_table

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def db_engine(args: argparse.Namespace, *, create: bool) -> tuple[Engine, str]:
    """An engine on the workspace's database and how to name it in messages."""
    from nirs4all_store.db import engine as engines

    url = store_url(args)
    if url is None:
        db_file = Path(args.workspace) / engines.DB_FILENAME
        if not create and not db_file.exists():
            raise CliError(
                f"no database at {db_file}: nothing to inspect (run a command that creates it)"
            )
        if not db_file.exists():
            print(f"creating a new workspace database at {db_file.resolve()}", file=sys.stderr)
        db_file.parent.mkdir(parents=True, exist_ok=True)
        url = engines.duckdb_url(db_file.resolve())
        where = str(db_file)
    else:
        where = engines.normalise_url(url).render_as_string(hide_password=True)
    return engines.create_store_engine(url), where


def cmd_db(args: argparse.Namespace) -> int:
    if args.db_command == "adopt":
        return _db_adopt(args)
    if args.db_command == "history":
        return _db_history(args)
    return _db_migrate(args)


def _db_adopt(args: argparse.Namespace) -> int:
    from nirs4all_store import adopt_legacy_workspace

    report = adopt_legacy_workspace(Path(args.workspace), dry_run=args.dry_run)
    emit(
        args,
        {
            "status": report.status,
            "workspace": str(report.workspace),
            "rows": report.rows(),
            "backup": str(report.backup) if report.backup else None,
        },
        report.describe(),
    )
    return 0


def _db_history(args: argparse.Namespace) -> int:
    from alembic.script import ScriptDirectory

    from nirs4all_store.db import migrate

    script = ScriptDirectory.from_config(migrate.alembic_config())
    revs = [
        {
            "revision": s.revision,
            "down_revision": s.down_revision,
            "head": s.revision == migrate.head_revision(),
            "message": (s.doc or "").strip(),
        }
        for s in script.walk_revisions()
    ]
    emit(
        args,
        revs,
        lambda: format_table(revs, ["revision", "down_revision", "head", "message"], max_width=70),
    )
    return 0


def _db_migrate(args: argparse.Namespace) -> int:
    """`db current`, `db upgrade` and `db downgrade`."""
    from nirs4all_store.db import migrate

    engine, where = db_engine(args, create=args.db_command == "upgrade")
    try:
        with engine.connect() as conn:
            before = migrate.current_revision(conn)
            # Other tables (a host application's) are fine: only the store's own names count.
            tables = migrate.store_tables_present(conn) if before is None else []
        if args.db_command == "current":
            _emit_current(args, where, before)
            return 0
        if before is None and tables:
            raise CliError(
                f"{where} holds the store's tables {tables} without a nirs4all-store version: "
                f"if it is a legacy nirs4all workspace, run `{PROG} db adopt --workspace PATH`"
            )
        if args.db_command == "upgrade":
            migrate.upgrade(engine, args.revision)
        else:
            _downgrade(args, engine, where, before)
        with engine.connect() as conn:
            after = migrate.current_revision(conn)
    finally:
        engine.dispose()
    text = f"{where}: {args.db_command} {before or '(none)'} -> {after or '(none)'}"
    if before == after:
        text = f"{where}: already at {after or '(none)'}, nothing to do"
    emit(args, {"database": where, "before": before, "after": after}, text)
    return 0


def _downgrade(args: argparse.Namespace, engine: Engine, where: str, before: str | None) -> None:
    """Downgrades drop tables and columns: ask on a terminal (unless --yes), and back a
    database file up first (`<file>.bak-<revision>`, the copy an upgrade makes too)."""
    from nirs4all_store.db import migrate
    from nirs4all_store.db.backup import backup_before_upgrade

    question = (
        f"Downgrade {where} from {before or '(none)'} to {args.revision}? Data in dropped "
        "tables and columns is lost (a file database is backed up first)."
    )
    if not confirm(args, question):
        raise CliError("downgrade cancelled: nothing changed")
    if before is not None:
        backup = backup_before_upgrade(engine, before)
        if backup is not None:
            print(f"backup: {backup}", file=sys.stderr)
    migrate.downgrade(engine, args.revision)


def _emit_current(args: argparse.Namespace, where: str, before: str | None) -> None:
    from nirs4all_store.db import migrate

    head = migrate.head_revision()
    data = {"database": where, "current": before, "head": head}
    state = "up to date" if before == head else ("empty" if before is None else "upgrade available")
    emit(args, data, f"{where}: revision {before or '(none)'} (head {head}, {state})")
