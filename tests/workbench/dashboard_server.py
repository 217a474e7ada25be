"""Start the dashboard server (what `nirs4all-store ui` will do): the tests run this file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace")
    parser.add_argument("--url")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    from nirs4all_store.workbench.dashboard import serve

    serve(args.workspace, args.url, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
