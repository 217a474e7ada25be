"""The facade's calls, one module per group of aggregates; `WorkspaceStore` composes them."""
