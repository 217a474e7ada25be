"""Shared fixtures: every store test runs on DuckDB, SQLite and PostgreSQL.

`store` / `open_store` are parametrised over the backends in NIRS4ALL_TEST_BACKENDS
(default: all three). PostgreSQL is a real throwaway server started by tests/pg_server.py
on 127.0.0.1; each test gets a database of its own, cloned from a migrated template.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from builders import unpack_legacy
from pg_server import create_database, session_pg_url

from nirs4all_store import WorkspaceStore

ALL_BACKENDS = ("duckdb", "sqlite", "postgresql")
BACKENDS = tuple(
    b.strip()
    for b in os.environ.get("NIRS4ALL_TEST_BACKENDS", ",".join(ALL_BACKENDS)).split(",")
    if b.strip()
)
_counter = itertools.count()


@pytest.fixture(autouse=True)
def _no_store_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their backend explicitly; a developer's NIRS4ALL_STORE_URL must not leak in."""
    monkeypatch.delenv("NIRS4ALL_STORE_URL", raising=False)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    yield from session_pg_url()


@pytest.fixture(scope="session")
def pg_template(pg_url: str) -> str:
    """A database migrated to head, cloned (CREATE DATABASE ... TEMPLATE) for each test."""
    import sqlalchemy as sa

    from nirs4all_store.db.engine import create_store_engine
    from nirs4all_store.db.migrate import upgrade

    url = create_database(pg_url, "n4a_template")
    engine = create_store_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    # A template must have no open connection while it is cloned.
    assert sa.make_url(url).database == "n4a_template"
    return url


def fresh_pg_database(pg_url: str, template: str | None) -> str:
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"n4a_t{os.getpid()}_{next(_counter)}"
    base = make_url(pg_url).set(drivername="postgresql", database="postgres")
    with psycopg.connect(base.render_as_string(hide_password=False), autocommit=True) as conn:
        if template:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(make_url(template).database)
                )
            )
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_url(pg_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str | None:
    """The URL a test's store uses (None: the workspace's own store.duckdb)."""
    if backend == "duckdb":
        return None
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    pg_url = request.getfixturevalue("pg_url")
    template = request.getfixturevalue("pg_template")
    return fresh_pg_database(pg_url, template)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path / "ws"


@pytest.fixture
def open_store(
    workspace: Path, database_url: str | None
) -> Iterator[Callable[..., WorkspaceStore]]:
    """Open (or reopen) the test's workspace on its backend; all are closed at teardown."""
    opened: list[WorkspaceStore] = []

    def _open(**kwargs: Any) -> WorkspaceStore:
        store = WorkspaceStore(workspace, url=database_url, **kwargs)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[..., WorkspaceStore]) -> WorkspaceStore:
    return open_store()


@pytest.fixture
def legacy_store(tmp_path: Path) -> Iterator[Callable[[], tuple[WorkspaceStore, dict[str, Any]]]]:
    opened: list[WorkspaceStore] = []

    def _open() -> tuple[WorkspaceStore, dict[str, Any]]:
        folder, expected = unpack_legacy(tmp_path)
        store = WorkspaceStore(folder)
        opened.append(store)
        return store, expected

    yield _open
    for store in opened:
        store.close()
