"""Output helpers: JSON-safe values, `--json` or text printing, short ids, output paths."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """`value` with numpy values, paths and datetimes turned into JSON types."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def emit(args: argparse.Namespace, data: Any, text: str | Callable[[], str]) -> None:
    """Print `data` as JSON with `--json`, else `text` (or what it returns)."""
    if args.json:
        sys.stdout.write(json.dumps(plain(data), indent=2, default=str) + "\n")
    else:
        sys.stdout.write((text() if callable(text) else text).rstrip("\n") + "\n")


def short(value: Any, n: int = 8) -> str:
    """The first `n` characters of an id, as the tables print it ("" for none)."""
    return str(value)[:n] if value else ""


def output_path(path: str | None) -> Path | None:
    """Output paths on the command line are relative to the current folder."""
    return Path(path).expanduser().resolve() if path else None
