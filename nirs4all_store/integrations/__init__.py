"""Adapters that put this library under other software, through its public API only.

- `nirs4all_store.integrations.nirs4all`: `use_nirs4all_store()` makes an installed nirs4all
  0.8.x use this library as its `WorkspaceStore` (docs/nirs4all.md).
"""
