"""Terminal output helpers: the progress bar of a run (tqdm) and aligned tables.

The bar is tqdm's (rate, ETA; `tqdm.auto` draws a widget in Jupyter instead of printing line
after line). On a terminal it redraws in place; on a pipe or a log file tqdm would still
write carriage returns, so there it prints at most one line every 2 s (`mininterval`).
`enabled=False` (`verbose=0`) creates no bar at all: nothing is written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

__all__ = ["Progress", "format_table", "format_value"]


class Progress:
    """`fits: 40%|####      | 12/30 [00:03<00:04, 3.9fit/s] <label>` over the fits of a run."""

    def __init__(self, total: int, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.total = max(int(total), 1)
        self.done = 0
        self.bar: Any = None
        if not enabled:
            return
        import sys

        out = stream if stream is not None else sys.stderr
        tty = bool(getattr(out, "isatty", lambda: False)())
        if stream is None or stream is sys.stderr or stream is sys.stdout:
            from tqdm.auto import tqdm  # a widget in notebooks, text elsewhere
        else:
            from tqdm import tqdm
        self.bar = tqdm(
            total=self.total,
            desc="fits",
            unit="fit",
            file=out,
            dynamic_ncols=tty,
            ncols=None if tty else 100,
            mininterval=0.1 if tty else 2.0,
            ascii=not tty,
            leave=True,
        )

    def advance(self, n: int = 1, label: str = "") -> None:
        self.done = min(self.done + n, self.total)
        if self.bar is not None:
            if label:
                self.bar.set_postfix_str(label[:50], refresh=False)
            self.bar.update(n)

    def write(self, text: str, stream: TextIO) -> None:
        """A message line that does not tear the bar (tqdm.write redraws it below)."""
        if self.bar is not None:
            self.bar.write(text.rstrip("\n"), file=stream)
        else:
            stream.write(text)

    def close(self, label: str = "done") -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(label, refresh=False)
            self.bar.close()
            self.bar = None


def format_value(value: Any, digits: int = 4) -> str:
    """Compact cell text: floats with `digits` significant decimals, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.4g}"
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def format_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, *, max_width: int = 48
) -> str:
    """Rows aligned in columns for a terminal (numbers right-aligned, long text cut)."""
    if columns is None:
        columns = list(rows[0].keys()) if rows else []
    if not columns:
        return ""
    cells = []
    for row in rows:
        line = []
        for col in columns:
            text = format_value(row.get(col)).replace("\n", " ")
            if len(text) > max_width:
                text = text[: max_width - 1] + "~"
            line.append(text)
        cells.append(line)
    numeric = [
        all(isinstance(row.get(col), (int, float)) or row.get(col) is None for row in rows)
        and bool(rows)
        for col in columns
    ]
    widths = [max([len(col)] + [len(line[i]) for line in cells]) for i, col in enumerate(columns)]

    def fmt(values: Sequence[str]) -> str:
        cols = zip(values, widths, numeric, strict=True)
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in cols]
        return "  ".join(parts).rstrip()

    out = [fmt(list(columns)), "  ".join("-" * w for w in widths)]
    out.extend(fmt(line) for line in cells)
    return "\n".join(out)
