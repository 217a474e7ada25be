"""The throwaway PostgreSQL plumbing itself: if it is broken, every PostgreSQL test lies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from pg_server import (
    PG_BIN_ENV_VAR,
    TEST_URL_ENV_VAR,
    PostgresUnavailableError,
    create_database,
    drop_database,
    find_pg_bin,
    running_in_ci,
    session_pg_url,
    throwaway_postgres,
)
from sqlalchemy.engine import make_url


def _require_binaries() -> None:
    if find_pg_bin() is None and not running_in_ci():
        pytest.skip("PostgreSQL binaries not found (CI fails instead of skipping)")


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    _require_binaries()
    with throwaway_postgres() as url:
        yield url


def _scalar(url: str, query: str) -> object:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query)).scalar_one()
    finally:
        engine.dispose()


def test_select_one_through_sqlalchemy_and_psycopg(server_url: str) -> None:
    url = make_url(server_url)
    assert url.drivername == "postgresql+psycopg"
    assert url.host == "127.0.0.1"
    assert _scalar(server_url, "SELECT 1") == 1
    assert _scalar(server_url, "SELECT current_database()") == url.database
    assert str(_scalar(server_url, "SELECT inet_server_addr()")) == "127.0.0.1"


def test_server_is_stopped_and_its_folder_removed_at_exit() -> None:
    _require_binaries()
    with throwaway_postgres(database="exit_check") as url:
        data_dir = Path(str(_scalar(url, "SHOW data_directory")))
        assert data_dir.is_dir()
    assert not data_dir.exists()
    assert not data_dir.parent.exists()
    with pytest.raises(sa.exc.OperationalError):
        _scalar(url, "SELECT 1")


def test_created_databases_are_isolated_and_dropped(server_url: str) -> None:
    first = create_database(server_url, "iso_first")
    second = create_database(server_url, "iso_second")
    engine = sa.create_engine(first)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE only_here (x integer)"))
    finally:
        engine.dispose()
    assert _scalar(first, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'") == 1
    assert _scalar(second, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'") == 0

    drop_database(server_url, "iso_first")
    drop_database(server_url, "iso_second")
    names = _scalar(server_url, "SELECT string_agg(datname, ',') FROM pg_database")
    assert "iso_first" not in str(names).split(",")
    with pytest.raises(sa.exc.OperationalError):
        _scalar(first, "SELECT 1")


def test_create_database_twice_fails(server_url: str) -> None:
    create_database(server_url, "twice")
    try:
        with pytest.raises(psycopg.errors.DuplicateDatabase):
            create_database(server_url, "twice")
    finally:
        drop_database(server_url, "twice")


@pytest.mark.parametrize("name", ["", "Upper", "1starts_with_digit", "semi;colon", "x" * 64])
def test_bad_database_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="database name"):
        create_database("postgresql+psycopg://postgres@127.0.0.1:1/postgres", name)


def test_explicit_bin_dir_without_binaries_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PG_BIN_ENV_VAR, str(tmp_path))
    with pytest.raises(PostgresUnavailableError, match=PG_BIN_ENV_VAR):
        find_pg_bin()


def _hide_postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PG_BIN_ENV_VAR, raising=False)
    monkeypatch.delenv(TEST_URL_ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("pg_server.SEARCH_GLOBS", ((str(tmp_path), "*/bin"),))
    assert find_pg_bin() is None


def test_missing_postgres_skips_outside_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_postgres(tmp_path, monkeypatch)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        next(session_pg_url())


def test_missing_postgres_fails_in_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_postgres(tmp_path, monkeypatch)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(PostgresUnavailableError, match="not found"):
        next(session_pg_url())


def test_external_server_url_is_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    external = "postgresql+psycopg://someone@db.example:5433/elsewhere"
    monkeypatch.setenv(TEST_URL_ENV_VAR, external)
    assert next(session_pg_url()) == external
