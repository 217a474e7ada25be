"""`python -m nirs4all_store`: the `nirs4all-store` command line."""

from __future__ import annotations

import sys

from nirs4all_store.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
