"""Output helpers: JSON-safe values, `--json` or text printing, short ids, output paths."""

from __future__ import annotations

import argparse
import contextlib
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


#: Columns that tables return as JSON text; `--json` output gives them as objects.
JSON_COLUMNS = (
    "config",
    "datasets",
    "summary",
    "scores",
    "best_params",
    "refit_context",
    "expanded_config",
    "generator_choices",
    "steps",
    "fold_artifacts",
    "shared_artifacts",
)


def decode_json(row: dict[str, Any]) -> dict[str, Any]:
    """`row` with its JSON-text columns decoded (objects are objects in `--json` output)."""
    out = dict(row)
    for name in JSON_COLUMNS:
        value = out.get(name)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                out[name] = json.loads(value)
    return out


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
    """Output paths are relative to the current folder (as in the API: one path rule)."""
    return Path(path).expanduser().resolve() if path else None


def confirm(args: argparse.Namespace, question: str) -> bool:
    """True with `--yes`, off a terminal (scripts), or when the user answers y on one."""
    if getattr(args, "yes", False) or not sys.stdin.isatty():
        return True
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        return False
    return answer.strip().lower() in ("y", "yes")
