"""The argument parser: common options, then one function per group of subcommands.

Every option has a help text and shows its default (ArgumentDefaultsHelpFormatter); every
subcommand ends its help with examples (EPILOGS).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from nirs4all_store import __version__
from nirs4all_store.cli.commands import cmd_demo, cmd_run, cmd_runs, cmd_show
from nirs4all_store.cli.db import cmd_db
from nirs4all_store.cli.errors import PROG
from nirs4all_store.cli.exports import (
    cmd_export_chain,
    cmd_export_predictions,
    cmd_predict,
    cmd_report,
    cmd_ui,
)
from nirs4all_store.cli.helptext import HelpFormatter, epilog
from nirs4all_store.cli.maintenance import cmd_delete_run, cmd_gc, cmd_vacuum, cmd_verify
from nirs4all_store.cli.specs import TEMPLATE_SPECS
from nirs4all_store.cli.top import cmd_top

Command = Callable[[argparse.Namespace], int]
#: add(name, func, help) -> the new subcommand's parser, with the common options.
AddCommand = Callable[[str, Command, str], argparse.ArgumentParser]


def common_options(*, workspace: bool = True) -> argparse.ArgumentParser:
    """Options every command takes, before or after the command name."""
    p = argparse.ArgumentParser(add_help=False)
    S = argparse.SUPPRESS
    if workspace:
        p.add_argument(
            "--workspace",
            "-w",
            default=S,
            help="workspace folder: store.duckdb, artifacts/, exports/ (default: ./workspace)",
        )
        p.add_argument(
            "--url",
            default=S,
            help="database URL (sqlite:///..., postgresql+psycopg://...) instead of the "
            "workspace's DuckDB file (default: $NIRS4ALL_STORE_URL, else none)",
        )
    p.add_argument(
        "--json",
        action="store_true",
        default=S,
        help="machine-readable JSON on stdout, errors as JSON on stderr (default: off)",
    )
    p.add_argument(
        "--debug", action="store_true", default=S, help="show tracebacks on errors (default: off)"
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[common],
        formatter_class=HelpFormatter,
        description="NIRS machine-learning workspaces: train, query, export, predict, maintain.",
        epilog=f"examples:\n  {PROG} demo\n  {PROG} top --workspace workspace\n"
        f"  {PROG} COMMAND --help",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    bare = common_options(workspace=False)

    def add(
        name: str, func: Command, help_text: str, *, workspace: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            parents=[common if workspace else bare],
            help=help_text,
            description=help_text,
            epilog=epilog(name),
            formatter_class=HelpFormatter,
        )
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
    p.add_argument("--n-jobs", type=int, default=None, help="parallel fits (joblib; -1: all cores)")

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
        help=f"template ({', '.join(TEMPLATE_SPECS)}), a JSON/YAML spec file, or the name of a "
        "template of the workspace's pipeline library (default pls)",
    )
    p.add_argument("--name", default=None)
    p.add_argument(
        "--cv",
        default="5",
        help="K (shuffled K-fold; group K-fold with --groups), kfold:K, stratified:K, group:K, "
        "stratified-group:K, repeated:KxR, loo, logo (default 5)",
    )
    p.add_argument(
        "--groups",
        default=None,
        metavar="COLUMN",
        help="metadata column (Mcal.csv) whose equal values stay in one fold, e.g. a sample id",
    )
    p.add_argument("--n-jobs", type=int, default=None, help="parallel fits (joblib; -1: all cores)")
    p.add_argument(
        "--metric",
        default=None,
        help="ranking metric: rmse, mae, r2, sep, rpd, rpiq; accuracy, balanced_accuracy, f1",
    )
    p.add_argument("--task-type", choices=["regression", "classification"], default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", "-q", action="store_true", help="print only the run id")


def _add_queries(add: AddCommand) -> None:
    p = add("runs", cmd_runs, "list runs, newest first")
    p.add_argument(
        "--status",
        choices=["running", "completed", "failed"],
        default=None,
        help="only runs with this status",
    )
    p.add_argument("--limit", type=int, default=50, help="at most this many runs")

    p = add("show", cmd_show, "a run and its pipelines")
    p.add_argument("run_id", metavar="RUN_ID", help="run id or a unique prefix")

    p = add("top", cmd_top, "leaderboard of predictions, by any stored score")
    p.add_argument("--run", default=None, help="restrict to a run (id or unique prefix)")
    p.add_argument("-n", type=int, default=10, help="number of rows")
    p.add_argument("--partition", choices=["val", "test", "train"], default="val", help="scores of")
    p.add_argument(
        "--fold", default="avg", help="fold id (avg: cross-validated, over the folds), or 'all'"
    )
    p.add_argument("--dataset", default=None, help="only this dataset")
    p.add_argument(
        "--metric",
        default=None,
        help="rank by this stored score: rmse, mae, r2, sep, rpd, rpiq, bias (closest to 0), "
        "slope (closest to 1), accuracy, balanced_accuracy, f1...; default: the run's metric "
        "(with --run), else that of the newest prediction",
    )
    p.add_argument(
        "--order",
        choices=["asc", "desc"],
        default=None,
        help="sort order; default: the metric's direction",
    )


def _add_exports(add: AddCommand) -> None:
    p = add("export-chain", cmd_export_chain, "write a chain as a portable .n4a bundle")
    p.add_argument(
        "chain_id", metavar="CHAIN_ID", nargs="?", default=None, help="chain id or unique prefix"
    )
    p.add_argument("--run", default=None, help="export the best chain of this run")
    p.add_argument("--pipeline", default=None, help="export the chain of this pipeline")
    p.add_argument("--prediction", default=None, help="export the chain of this prediction")
    p.add_argument(
        "--output",
        "-o",
        default=None,
        help="bundle path, relative to the current folder (default: WORKSPACE/exports/"
        "<chain_id>.n4a)",
    )

    p = add("export-predictions", cmd_export_predictions, "write predictions to Parquet")
    p.add_argument(
        "--output",
        "-o",
        default=None,
        help="Parquet path, relative to the current folder (default: "
        "WORKSPACE/exports/predictions.parquet)",
    )
    p.add_argument("--run", default=None, help="only this run (id or unique prefix)")
    p.add_argument("--pipeline", default=None, help="only this pipeline (id or unique prefix)")
    p.add_argument("--dataset", dest="dataset_name", default=None, help="only this dataset")
    p.add_argument(
        "--partition", default=None, choices=["train", "val", "test"], help="only this partition"
    )
    p.add_argument("--fold", dest="fold_id", default=None, help="only this fold (e.g. avg)")
    p.add_argument("--arrays", action="store_true", help="include y_true/y_pred/y_proba")

    p = add(
        "predict",
        cmd_predict,
        "predict spectra of a CSV file with a .n4a bundle (no workspace needed)",
        workspace=False,
    )
    p.add_argument("bundle", metavar="BUNDLE", help=".n4a bundle (from export-chain)")
    p.add_argument("csv", metavar="CSV", help=";-separated spectra, one per row, header optional")
    p.add_argument(
        "--id-column",
        default=None,
        metavar="NAME",
        help="the header's column of sample ids, kept and written beside the predictions "
        "(default: a first column of text is taken as ids)",
    )
    p.add_argument(
        "--output", "-o", default=None, help="write the predictions to this CSV file (else stdout)"
    )


def _add_maintenance(add: AddCommand) -> None:
    p = add("gc", cmd_gc, "remove artifacts no chain references")
    p.add_argument(
        "--grace",
        type=float,
        default=3600.0,
        help="keep never-referenced artifacts younger than this (s)",
    )
    p.add_argument("--dry-run", action="store_true", help="list what would go, remove nothing")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    p = add("verify", cmd_verify, "check reference counts, files and hashes (exit 1 on problems)")
    p.add_argument(
        "--repair", action="store_true", help="fix reference counts and remove old orphan files"
    )

    add("vacuum", cmd_vacuum, "reclaim database space")

    p = add("delete-run", cmd_delete_run, "delete a run and everything under it")
    p.add_argument("run_id", metavar="RUN_ID", help="run id or unique prefix")
    p.add_argument(
        "--keep-artifacts", action="store_true", help="keep the artifact files it releases"
    )
    p.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")


def _add_report(add: AddCommand) -> None:
    p = add(
        "report",
        cmd_report,
        'self-contained HTML report of a run (needs: pip install "nirs4all-store[plot]")',
    )
    p.add_argument("run_id", metavar="RUN_ID", help="run id or unique prefix")
    p.add_argument(
        "--output",
        "-o",
        default=None,
        help="HTML path, relative to the current folder (default: "
        "WORKSPACE/exports/report_<run>.html)",
    )
    p.add_argument("--plots", type=int, default=3, help="number of best chains to plot")

    p = add(
        "ui",
        cmd_ui,
        'the dashboard in the browser, read-only (needs: pip install "nirs4all-store[ui]")',
    )
    p.add_argument("--port", type=int, default=8765, help="port to listen on")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (0.0.0.0 shares it on the network)"
    )
    p.add_argument("--open", action="store_true", help="open a browser tab on the dashboard")


def _add_db(add: AddCommand, common: argparse.ArgumentParser) -> None:
    p = add("db", cmd_db, "schema migrations (Alembic) and legacy adoption")
    dbsub = p.add_subparsers(
        dest="db_command", metavar="DB_COMMAND", help="upgrade, current, history, downgrade, adopt"
    )
    dbsub.required = True
    f = HelpFormatter
    q = dbsub.add_parser(
        "upgrade", parents=[common], formatter_class=f, help="migrate to a revision (creates)"
    )
    q.add_argument("revision", nargs="?", default="head", help="target revision")
    dbsub.add_parser(
        "current", parents=[common], formatter_class=f, help="the database's revision and the head"
    )
    dbsub.add_parser("history", parents=[common], formatter_class=f, help="the known revisions")
    q = dbsub.add_parser(
        "downgrade", parents=[common], formatter_class=f, help="migrate down to REVISION"
    )
    q.add_argument("revision", metavar="REVISION", help="target revision")
    q.add_argument(
        "--yes", action="store_true", help="downgrade without asking (a backup is still made)"
    )
    q = dbsub.add_parser(
        "adopt", parents=[common], formatter_class=f, help="adopt a legacy nirs4all workspace"
    )
    q.add_argument(
        "--dry-run", action="store_true", help="say what would be adopted, change nothing"
    )
