"""`nirs4all-store` command line (also `python -m nirs4all_store`).

Every command takes `--workspace PATH` (default ./workspace) or `--url URL` (also the
NIRS4ALL_STORE_URL environment variable), `--json` for machine output and `--debug` for
tracebacks. Errors print one line on stderr (a JSON object with `--json`) and exit 1 (2 for
usage errors). Commands that only read refuse a workspace that does not exist. Built on the
public API only: `WorkspaceStore`, `run()`, bundles, exports and the migration helpers.

Layout: parser.py (the options), commands.py / maintenance.py / db.py (the commands),
specs.py (pipeline templates and spec files), output.py (printing), workspace.py (opening
the store, finding runs), errors.py (CliError); this module parses, dispatches and turns
errors into exit statuses.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from nirs4all_store.cli.errors import PROG, CliError
from nirs4all_store.cli.parser import build_parser
from nirs4all_store.cli.workspace import DEFAULT_WORKSPACE


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0] if isinstance(exc, (OSError,)) else " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 error, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, default in (
        ("workspace", DEFAULT_WORKSPACE),
        ("url", None),
        ("json", False),
        ("debug", False),
    ):
        if not hasattr(args, name):
            setattr(args, name, default)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except Exception as exc:
        if args.debug:
            raise
        kind = "" if isinstance(exc, CliError) else f"{type(exc).__name__}: "
        if args.json:  # machines read stderr too: one JSON object, same exit status
            error = {"error": _message(exc), "type": type(exc).__name__, "command": args.command}
            sys.stderr.write(json.dumps(error) + "\n")
        else:
            sys.stderr.write(f"{PROG}: error: {kind}{_message(exc)}\n")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
