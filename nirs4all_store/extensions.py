"""Entry points of the layers above the core, registered by name.

The facade offers a few workbench conveniences (`WorkspaceStore.replay_chain`,
`export_chain`, `export_*`), but the core never imports the workbench: the package's
`__init__` (the top of the package, above both) registers each as a "module:attribute"
string, resolved on first call. A host application can register its own implementation
under the same name (e.g. a replay that knows its own operators).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

_ENTRY_POINTS: dict[str, str | Callable[..., Any]] = {}


def register(name: str, target: str | Callable[..., Any]) -> None:
    """Make `name` resolve to `target`: a callable, or "package.module:attribute"."""
    if isinstance(target, str) and ":" not in target:
        raise ValueError(f"entry point {name!r} must be 'module:attribute', got {target!r}")
    _ENTRY_POINTS[name] = target


def resolve(name: str) -> Callable[..., Any]:
    """The callable registered as `name` (imported on first use)."""
    try:
        target = _ENTRY_POINTS[name]
    except KeyError:
        raise LookupError(
            f"no implementation of {name!r} is registered: import nirs4all_store (the package) "
            "or register one with nirs4all_store.extensions.register"
        ) from None
    if isinstance(target, str):
        module, _, attribute = target.partition(":")
        target = getattr(importlib.import_module(module), attribute)
        _ENTRY_POINTS[name] = target
    return target
