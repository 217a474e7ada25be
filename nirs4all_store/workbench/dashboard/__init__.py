"""The workspace dashboard: `nirs4all-store ui` (needs the `[ui]` extra).

`create_app(workspace, url)` returns the Starlette application; `serve(workspace, url, host,
port)` runs it with uvicorn on 127.0.0.1 unless told otherwise. See docs/dashboard.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["INSTALL_HINT", "create_app", "serve"]

INSTALL_HINT = 'the dashboard needs its extra: pip install "nirs4all-store[ui]"'

if TYPE_CHECKING:
    from .app import create_app, serve


def __getattr__(name: str) -> Any:
    if name not in ("create_app", "serve"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from . import app
    except ImportError as exc:  # starlette, uvicorn, jinja2 or plotly missing
        raise ImportError(f"{INSTALL_HINT} ({exc})") from exc
    return getattr(app, name)
