"""The `nirs4all-store` command line: the top layer, built on the public API (see main.py)."""
