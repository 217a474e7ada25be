"""Make an installed nirs4all 0.8.x use this library as its WorkspaceStore.

```python notest
import nirs4all
from nirs4all_store.integrations.nirs4all import use_nirs4all_store

use_nirs4all_store()                                   # DuckDB in each workspace folder
use_nirs4all_store("postgresql+psycopg://u:p@db/n4a")  # or any database URL
result = nirs4all.run(pipeline, dataset, workspace_path="workspace")
```

nirs4all binds its store class at import time in three places (traced, docs/nirs4all.md):
`nirs4all.pipeline.storage.workspace_store.WorkspaceStore` (the definition, read by every
function-local import), `nirs4all.pipeline.storage.WorkspaceStore` and
`nirs4all.pipeline.execution.orchestrator.WorkspaceStore` (the training store). All three
are replaced by a `Nirs4allWorkspaceStore` subclass carrying the URL and options;
`restore()` (or leaving the `with` block) puts nirs4all's own class back.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Mapping
from typing import Any

from nirs4all_store.integrations.nirs4all_store import Nirs4allWorkspaceStore

__all__ = [
    "SUPPORTED_NIRS4ALL",
    "Nirs4allStorePatch",
    "Nirs4allWorkspaceStore",
    "use_nirs4all_store",
]

#: nirs4all releases whose store contract this integration was traced and tested against.
SUPPORTED_NIRS4ALL = (">=0.8,<0.9",)

#: Module attributes where nirs4all 0.8.x holds its WorkspaceStore class.
PATCH_SITES = (
    "nirs4all.pipeline.storage.workspace_store",
    "nirs4all.pipeline.storage",
    "nirs4all.pipeline.execution.orchestrator",
)


class Nirs4allStorePatch:
    """The replaced attributes, to put back with `restore()` (also a context manager)."""

    def __init__(self, store_class: type[Nirs4allWorkspaceStore]) -> None:
        self.store_class = store_class
        self._saved: list[tuple[Any, Any]] = []

    def apply(self) -> Nirs4allStorePatch:
        for name in PATCH_SITES:
            module = importlib.import_module(name)
            self._saved.append((module, module.WorkspaceStore))
            module.WorkspaceStore = self.store_class
        return self

    def restore(self) -> None:
        """Give nirs4all its own WorkspaceStore back (idempotent)."""
        while self._saved:
            module, original = self._saved.pop()
            module.WorkspaceStore = original

    def __enter__(self) -> type[Nirs4allWorkspaceStore]:
        return self.store_class

    def __exit__(self, *exc: object) -> None:
        self.restore()


def nirs4all_version() -> str:
    """The installed nirs4all version; ImportError with the install command if absent."""
    try:
        return importlib.metadata.version("nirs4all")
    except importlib.metadata.PackageNotFoundError:
        raise ImportError(
            "nirs4all is not installed: pip install 'nirs4all-store[nirs4all]'"
        ) from None


def use_nirs4all_store(url: str | None = None, **store_options: Any) -> Nirs4allStorePatch:
    """Make nirs4all 0.8.x store its runs with this library; returns the patch.

    `url`: a database URL (SQLite or PostgreSQL; None keeps DuckDB `store.duckdb` in each
    workspace folder nirs4all opens, and `NIRS4ALL_STORE_URL` is honoured as by
    `WorkspaceStore`). `store_options`: `WorkspaceStore` keywords (e.g. `lock_timeout`).
    Every store nirs4all constructs from then on (training, `Predictions(workspace)`,
    `nirs4all.predict(chain_id=...)`, the CLI) is a `Nirs4allWorkspaceStore`. Call
    `.restore()` on the result, or use it in a `with` block, to undo. Raises ImportError
    when nirs4all is missing and RuntimeError for a nirs4all outside 0.8.x.
    """
    version = nirs4all_version()
    major_minor = tuple(int(part) for part in version.split(".")[:2])
    if major_minor != (0, 8):
        raise RuntimeError(
            f"nirs4all {version} is not supported: this integration speaks the store "
            f"contract of nirs4all 0.8.x (pip install 'nirs4all>=0.8,<0.9')"
        )
    options: Mapping[str, Any] = dict(store_options)
    store_class = type(
        "WorkspaceStore",
        (Nirs4allWorkspaceStore,),
        {
            "default_url": url,
            "default_options": options,
            "__module__": Nirs4allWorkspaceStore.__module__,
            "__doc__": Nirs4allWorkspaceStore.__doc__,
        },
    )
    return Nirs4allStorePatch(store_class).apply()
