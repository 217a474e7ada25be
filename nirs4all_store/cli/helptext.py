"""Help output: the formatter (defaults shown) and the examples of each subcommand."""

from __future__ import annotations

import argparse

from nirs4all_store.cli.errors import PROG

_W = "--workspace ws"
#: Examples printed at the end of each subcommand's --help.
EPILOGS: dict[str, list[str]] = {
    "demo": [f"{PROG} demo", f"{PROG} demo {_W} --samples 100 --cv 3"],
    "run": [
        f"{PROG} run -d data/wheat {_W}",
        f"{PROG} run -d data/wheat -d data/corn -p ridge --name sweep --cv 10 {_W}",
        f"{PROG} run -d data/wheat -p my_pipelines.yaml --metric r2 -q {_W}",
    ],
    "runs": [f"{PROG} runs {_W}", f"{PROG} runs --status failed --json {_W}"],
    "show": [f"{PROG} show 5bdf12ab {_W}"],
    "top": [
        f"{PROG} top {_W}",
        f"{PROG} top --run 5bdf12ab --metric r2 -n 5 {_W}",
        f"{PROG} top --partition test --fold all --json {_W}",
    ],
    "export-chain": [
        f"{PROG} export-chain e39d073a {_W}              # -> ws/exports/<chain>.n4a",
        f"{PROG} export-chain --run 5bdf12ab -o best.n4a {_W}   # ./best.n4a",
    ],
    "export-predictions": [
        f"{PROG} export-predictions --run 5bdf12ab --partition val --arrays {_W}",
        f"{PROG} export-predictions -o val.parquet --partition val {_W}",
    ],
    "predict": [
        f"{PROG} predict best.n4a spectra.csv",
        f"{PROG} predict best.n4a new.csv -o y.csv",
    ],
    "report": [
        f"{PROG} report 5bdf12ab {_W}          # -> ws/exports/report_5bdf12ab.html",
        f"{PROG} report 5bdf12ab -o report.html {_W}",
    ],
    "ui": [f"{PROG} ui {_W}", f"{PROG} ui {_W} --port 8800 --open"],
    "gc": [f"{PROG} gc --dry-run {_W}", f"{PROG} gc --yes {_W}"],
    "verify": [f"{PROG} verify {_W}", f"{PROG} verify --repair {_W}"],
    "vacuum": [f"{PROG} vacuum {_W}"],
    "delete-run": [
        f"{PROG} delete-run 5bdf12ab --dry-run {_W}",
        f"{PROG} delete-run 5bdf12ab --yes {_W}",
    ],
    "db": [
        f"{PROG} db current {_W}",
        f"{PROG} db upgrade --url postgresql+psycopg://me@db-host/nirs",
        f"{PROG} db adopt --dry-run --workspace old_workspace",
    ],
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after every help text; the examples epilog kept as written.

    A help text that already names its default, and a default of None or False (an option
    that is off unless given), print no "(default: ...)".
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def epilog(name: str) -> str | None:
    examples = EPILOGS.get(name)
    return "examples:\n" + "\n".join(f"  {e}" for e in examples) if examples else None
