"""Width-aware text tables for the terminal.

A table wider than the terminal shrinks its widest text columns; a cell that no longer fits
is cut around the part that differs from the other cells of its column (their common prefix
is what goes), so two pipeline names that differ only at character 49 stay told apart.
Output that is not a terminal (a pipe, a file) is never cut; `COLUMNS` sets the width.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from nirs4all_store.workbench.progress import format_value

ELLIPSIS = "…"
#: A shrunk column keeps at least this many characters (or its header's length).
MIN_WIDTH = 12
GAP = "  "


def terminal_width() -> int | None:
    """The width to fit: `COLUMNS`, else the terminal's, else None (no limit) for a pipe."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def _common_prefix(values: Sequence[str]) -> int:
    distinct = sorted(set(values))
    if len(distinct) < 2:
        return 0
    first, last = distinct[0], distinct[-1]
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return n


def elide(value: str, width: int, differs_at: int = 0) -> str:
    """`value` in `width` characters, keeping the part from `differs_at` on in view."""
    if len(value) <= width:
        return value
    keep = width - 1
    if differs_at < keep - 3:
        return value[:keep] + ELLIPSIS
    if len(value) - differs_at <= keep - 3:
        return ELLIPSIS + value[-keep:]
    start = max(0, differs_at - 3)
    return ELLIPSIS + value[start : start + keep - 1] + ELLIPSIS


def _fit(widths: list[int], minimum: list[int], limit: int) -> list[int]:
    """Column widths shrunk (widest first) until the row fits in `limit` characters."""
    widths = list(widths)
    while sum(widths) + len(GAP) * (len(widths) - 1) > limit:
        candidates = [i for i, w in enumerate(widths) if w > minimum[i]]
        if not candidates:
            break
        i = max(candidates, key=lambda k: widths[k])
        excess = sum(widths) + len(GAP) * (len(widths) - 1) - limit
        widths[i] = max(minimum[i], widths[i] - excess)
    return widths


def render(
    rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, width: int | None = -1
) -> str:
    """A text table of `rows` (numbers right-aligned); `width=-1`: the terminal's."""
    if not rows:
        return ""
    cols = list(columns) if columns is not None else list(rows[0])
    cells = [[format_value(r.get(c)) for c in cols] for r in rows]
    numeric = [
        all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows) for c in cols
    ]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    limit = terminal_width() if width == -1 else width
    if limit is not None:
        minimum = [
            widths[i] if numeric[i] or c.endswith("_id") else max(len(c), MIN_WIDTH)
            for i, c in enumerate(cols)
        ]
        fitted = _fit(widths, minimum, limit)
        for i, w in enumerate(fitted):
            if w < widths[i]:
                column = [row[i] for row in cells]
                at = _common_prefix([v for v in column if len(v) > w])
                for row in cells:
                    row[i] = elide(row[i], w, at)
        widths = fitted

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if numeric[i] else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return GAP.join(parts).rstrip()

    out = [line(cols), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)
