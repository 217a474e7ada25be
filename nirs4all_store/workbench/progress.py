"""Terminal output helpers: a dependency-free progress line and aligned tables.

A hand-written progress line on stderr avoids a tqdm/rich dependency for one bar; it redraws
in place on a terminal and prints a plain line per update elsewhere (CI logs, pipes), throttled.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

__all__ = ["Progress", "format_table", "format_value"]


class Progress:
    """`[#####.....]  12/100 folds  0:03  <label>` over pipelines x folds, on stderr."""

    def __init__(
        self, total: int, *, enabled: bool = True, stream: TextIO | None = None, width: int = 28
    ) -> None:
        self.total = max(int(total), 1)
        self.done = 0
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.start = time.perf_counter()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_plain = -1.0
        self._last_len = 0

    def advance(self, n: int = 1, label: str = "") -> None:
        self.done = min(self.done + n, self.total)
        self._draw(label)

    def _draw(self, label: str, final: bool = False) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        filled = int(self.width * self.done / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        minutes, seconds = divmod(int(elapsed), 60)
        count = f"{self.done:>{len(str(self.total))}}/{self.total}"
        text = f"[{bar}] {count} fits  {minutes}:{seconds:02d}"
        if label:
            text += f"  {label[:60]}"
        if self._tty:
            pad = " " * max(self._last_len - len(text), 0)
            self.stream.write("\r" + text + pad + ("\n" if final else ""))
            self._last_len = len(text)
        elif final or elapsed - self._last_plain >= 2.0 or self.done == self.total:
            self.stream.write(text + "\n")
            self._last_plain = elapsed
        self.stream.flush()

    def close(self, label: str = "done") -> None:
        if (self.enabled and self._tty) or (self.enabled and self._last_plain < 0):
            self._draw(label, final=True)


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
