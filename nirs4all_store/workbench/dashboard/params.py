"""Query-parameter parsing: every bad value becomes a `BadQuery` (HTTP 400) naming the reason."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

__all__ = [
    "MAX_PER_PAGE",
    "BadQuery",
    "BoardQuery",
    "choice",
    "flag",
    "integer",
    "page_args",
    "text",
]

MAX_PER_PAGE = 200
_MAX_TEXT = 300


class BadQuery(ValueError):
    """A query parameter the dashboard cannot use; the message is shown to the user."""


def _raw(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def integer(query: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    """An int in [lo, hi]; absent or empty gives `default`."""
    raw = _raw(query, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadQuery(f"{name} must be an integer between {lo} and {hi}, got {raw!r}") from None
    if not lo <= value <= hi:
        raise BadQuery(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def choice(
    query: Mapping[str, str], name: str, choices: Collection[str], default: str | None = None
) -> str | None:
    """One of `choices`; absent or empty gives `default`."""
    raw = _raw(query, name)
    if raw is None:
        return default
    if raw not in choices:
        raise BadQuery(f"{name} must be one of {sorted(choices)}, got {raw!r}")
    return raw


def text(query: Mapping[str, str], name: str) -> str | None:
    """Free text (a dataset name, a model class...); absent or empty gives None."""
    raw = _raw(query, name)
    if raw is not None and len(raw) > _MAX_TEXT:
        raise BadQuery(f"{name} is longer than {_MAX_TEXT} characters")
    return raw


def flag(query: Mapping[str, str], name: str) -> bool:
    raw = _raw(query, name)
    if raw is None:
        return False
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise BadQuery(f"{name} must be 1 or 0, got {raw!r}")


def page_args(query: Mapping[str, str], default_per_page: int = 25) -> tuple[int, int]:
    """(page >= 1, per_page in 1..MAX_PER_PAGE)."""
    page = integer(query, "page", 1, 1, 1_000_000)
    per_page = integer(query, "per_page", default_per_page, 1, MAX_PER_PAGE)
    return page, per_page


@dataclass(frozen=True)
class BoardQuery:
    """What the run page's leaderboard shows: metric, order, filters and page."""

    metric: str | None = None  # None: the run's metric
    sort: str = "score"
    order: str | None = None  # None: the metric's direction
    dataset: str | None = None
    model_class: str | None = None
    preprocessing: str | None = None
    page: int = 1
    per_page: int = 25
