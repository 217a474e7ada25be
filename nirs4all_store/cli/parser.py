"""The argument parser: common options, then one function per group of subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from nirs4all_store.cli.commands import (
    cmd_demo,
    cmd_export_chain,
    cmd_export_predictions,
    cmd_predict,
    cmd_report,
    cmd_run,
    cmd_runs,
    cmd_show,
    cmd_top,
)
from nirs4all_store.cli.db import cmd_db
from nirs4all_store.cli.errors import PROG
from nirs4all_store.cli.maintenance import cmd_delete_run, cmd_gc, cmd_vacuum, cmd_verify
from nirs4all_store.cli.specs import TEMPLATE_SPECS

Command = Callable[[argparse.Namespace], int]
#: add(name, func, help) -> the new subcommand's parser, with the common options.
AddCommand = Callable[[str, Command, str], argparse.ArgumentParser]


def common_options() -> argparse.ArgumentParser:
    """Options every command takes, before or after the command name."""
    p = argparse.ArgumentParser(add_help=False)
    S = argparse.SUPPRESS
    p.add_argument("--workspace", "-w", default=S, help="workspace folder (default ./workspace)")
    p.add_argument(
        "--url",
        default=S,
        help="database URL (sqlite:///..., postgresql://...); env NIRS4ALL_STORE_URL",
    )
    p.add_argument("--json", action="store_true", default=S, help="machine-readable JSON output")
    p.add_argument("--debug", action="store_true", default=S, help="show tracebacks on errors")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[common],
        description="NIRS machine-learning workspaces: train, query, export, predict, maintain.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    _add_training(add)
    _add_queries(add)
    _add_exports(add)
    _add_maintenance(add)
    _add_report(add)
    _add_db(add, common)
    return parser


def _add_training(add: AddCommand) -> None:
    p = add(
        "demo", cmd_demo, "synthetic NIR data, 9 pipelines, 5-fold CV, export and predict the best"
    )
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--wavelengths", type=int, default=500)
    p.add_argument("--cv", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)

    p = add("run", cmd_run, "train pipelines on nirs4all dataset folder(s)")
    p.add_argument(
        "--dataset",
        "-d",
        action="append",
        required=True,
        help="nirs4all folder (Xcal/Ycal[/Xval/Yval]); repeatable",
    )
    p.add_argument(
        "--pipeline",
        "-p",
        default="pls",
        help=f"template ({', '.join(TEMPLATE_SPECS)}) or a JSON/YAML spec file (default pls)",
    )
    p.add_argument("--name", default=None)
    p.add_argument("--cv", type=int, default=5)
    p.add_argument("--metric", default=None, help="rmse, mae, r2, accuracy, balanced_accuracy")
    p.add_argument("--task-type", choices=["regression", "classification"], default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", "-q", action="store_true", help="print only the run id")


def _add_queries(add: AddCommand) -> None:
    p = add("runs", cmd_runs, "list runs, newest first")
    p.add_argument("--status", choices=["running", "completed", "failed"], default=None)
    p.add_argument("--limit", type=int, default=50)

    p = add("show", cmd_show, "a run and its pipelines")
    p.add_argument("run_id", metavar="RUN_ID", help="run id or a unique prefix")

    p = add("top", cmd_top, "leaderboard of predictions")
    p.add_argument("--run", default=None, help="restrict to a run (id or prefix)")
    p.add_argument("-n", type=int, default=10)
    p.add_argument("--partition", choices=["val", "test", "train"], default="val")
    p.add_argument("--fold", default="avg", help="fold id (default avg: cross-validated), or 'all'")
    p.add_argument("--dataset", default=None)
    p.add_argument("--metric", default=None, help="only predictions scored with this metric")
    p.add_argument(
        "--order", choices=["asc", "desc"], default=None, help="default: by the metric's direction"
    )


def _add_exports(add: AddCommand) -> None:
    p = add("export-chain", cmd_export_chain, "write a chain as a portable .n4a bundle")
    p.add_argument("chain_id", metavar="CHAIN_ID", nargs="?", default=None)
    p.add_argument("--run", default=None, help="export the best chain of this run")
    p.add_argument("--prediction", default=None, help="export the chain of this prediction")
    p.add_argument("--output", "-o", default=None, help="bundle path (default exports/<chain>.n4a)")

    p = add("export-predictions", cmd_export_predictions, "write predictions to Parquet")
    p.add_argument("--output", "-o", default=None, help="default exports/predictions.parquet")
    p.add_argument("--run", default=None)
    p.add_argument("--dataset", dest="dataset_name", default=None)
    p.add_argument("--partition", default=None, choices=["train", "val", "test"])
    p.add_argument("--fold", dest="fold_id", default=None)
    p.add_argument("--arrays", action="store_true", help="include y_true/y_pred/y_proba")

    p = add("predict", cmd_predict, "predict spectra of a CSV file with a .n4a bundle")
    p.add_argument("bundle", metavar="BUNDLE")
    p.add_argument("csv", metavar="CSV", help=";-separated spectra, one per row, header optional")
    p.add_argument("--output", "-o", default=None, help="write predictions to a CSV file")


def _add_maintenance(add: AddCommand) -> None:
    p = add("gc", cmd_gc, "remove artifacts no chain references")
    p.add_argument(
        "--grace",
        type=float,
        default=3600.0,
        help="keep never-referenced artifacts younger than this (s)",
    )
    p.add_argument("--dry-run", action="store_true")

    p = add("verify", cmd_verify, "check reference counts, files and hashes (exit 1 on problems)")
    p.add_argument("--repair", action="store_true")

    add("vacuum", cmd_vacuum, "reclaim database space")

    p = add("delete-run", cmd_delete_run, "delete a run and everything under it")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--keep-artifacts", action="store_true")


def _add_report(add: AddCommand) -> None:
    p = add("report", cmd_report, "self-contained HTML report of a run (needs matplotlib)")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--output", "-o", default="report.html")
    p.add_argument("--plots", type=int, default=3, help="number of best chains to plot")


def _add_db(add: AddCommand, common: argparse.ArgumentParser) -> None:
    p = add("db", cmd_db, "schema migrations (Alembic) and legacy adoption")
    dbsub = p.add_subparsers(dest="db_command", metavar="DB_COMMAND")
    dbsub.required = True
    q = dbsub.add_parser("upgrade", parents=[common], help="migrate to a revision (default head)")
    q.add_argument("revision", nargs="?", default="head")
    dbsub.add_parser("current", parents=[common], help="the database's revision and the head")
    dbsub.add_parser("history", parents=[common], help="the known revisions")
    q = dbsub.add_parser("downgrade", parents=[common], help="migrate down to REVISION")
    q.add_argument("revision", metavar="REVISION")
    q = dbsub.add_parser("adopt", parents=[common], help="adopt a legacy nirs4all workspace")
    q.add_argument("--dry-run", action="store_true")
