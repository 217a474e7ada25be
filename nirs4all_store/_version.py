"""The package version: one definition, read by pyproject.toml (setuptools' dynamic version)
and by the package (bundles record it)."""

__version__ = "0.1.0"
