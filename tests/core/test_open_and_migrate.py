"""Opening workspaces: migration on open, backups, refusals, handed-in engines, time zones."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from nirs4all_store import SchemaTooNewError, WorkspaceStore
from nirs4all_store.db import migrate
from nirs4all_store.db.engine import create_store_engine, duckdb_url


def _stamp(db_file: Path, revision: str) -> None:
    engine = create_store_engine(duckdb_url(db_file))
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = :r"), {"r": revision}
            )
    finally:
        engine.dispose()


def _revision(db_file: Path) -> str | None:
    engine = create_store_engine(duckdb_url(db_file))
    try:
        with engine.connect() as conn:
            return migrate.current_revision(conn)
    finally:
        engine.dispose()


def test_new_workspace_is_at_head(tmp_path: Path) -> None:
    with WorkspaceStore(tmp_path / "ws"):
        pass
    assert _revision(tmp_path / "ws" / "store.duckdb") == migrate.HEAD_REVISION


def test_older_workspace_is_backed_up_then_upgraded(tmp_path: Path) -> None:
    db_file = tmp_path / "ws" / "store.duckdb"
    db_file.parent.mkdir()
    engine = create_store_engine(duckdb_url(db_file))
    migrate.upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO runs (run_id, name, status, created_at) "
                "VALUES ('r-old', 'before upgrade', 'completed', TIMESTAMP '2025-01-02 03:04:05')"
            )
        )
    engine.dispose()
    with WorkspaceStore(tmp_path / "ws") as store:
        run = store.get_run("r-old")
        assert run is not None and run["name"] == "before upgrade"
        assert run["created_at"].isoformat() == "2025-01-02T03:04:05+00:00"
    backup = tmp_path / "ws" / "store.duckdb.bak-0001"
    assert backup.is_file()
    assert _revision(backup) == "0001"
    assert _revision(db_file) == migrate.HEAD_REVISION


def test_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    with WorkspaceStore(tmp_path / "ws") as store:
        store.begin_run("kept")
    db_file = tmp_path / "ws" / "store.duckdb"
    _stamp(db_file, "9999_from_the_future")
    before = db_file.read_bytes()
    with pytest.raises(SchemaTooNewError, match=r"9999_from_the_future.*upgrade the package"):
        WorkspaceStore(tmp_path / "ws")
    assert db_file.read_bytes() == before
    assert not list(db_file.parent.glob("*.bak-*"))


def test_engine_handed_in_and_url_without_folder(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'app.sqlite'}")
    with WorkspaceStore(engine, artifacts_dir=tmp_path / "blobs") as store:
        run_id = store.begin_run("from an app")
        artifact_id = store.save_artifact({"a": 1}, "dict", "test")
        assert store.get_artifact_path(artifact_id).is_relative_to(tmp_path / "blobs")
    # the caller's engine is not disposed by the store
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM runs")).scalar_one() == "from an app"
    engine.dispose()
    with pytest.raises(ValueError, match="workspace folder is needed for artifacts"):
        WorkspaceStore(f"sqlite:///{tmp_path / 'other.sqlite'}")
    with WorkspaceStore(tmp_path / "ws", url=f"sqlite:///{tmp_path / 'app.sqlite'}") as store:
        assert store.get_run(run_id)["name"] == "from an app"
    with pytest.raises(ValueError, match="either as workspace or as url"):
        WorkspaceStore(
            f"sqlite:///{tmp_path / 'a.sqlite'}", url=f"sqlite:///{tmp_path / 'b.sqlite'}"
        )


def test_workspace_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        WorkspaceStore(tmp_path / "file")


def test_a_store_table_of_foreign_shape_is_refused_by_name_on_sqlite(tmp_path: Path) -> None:
    """Issue 14: the store lives beside other tables, but never writes into a table of its
    name that it did not create (no store version)."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'foreign.sqlite'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE invoices (id INTEGER PRIMARY KEY)"))
        conn.execute(sa.text("CREATE TABLE runs (id INTEGER PRIMARY KEY, owner TEXT)"))
    engine.dispose()
    from nirs4all_store import UnknownSchemaError

    with pytest.raises(UnknownSchemaError, match=r"\['runs'\]") as caught:
        WorkspaceStore(tmp_path / "ws", url=f"sqlite:///{tmp_path / 'foreign.sqlite'}")
    assert "invoices" not in str(caught.value)


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_close_releases_the_duckdb_file_for_another_process(tmp_path: Path) -> None:
    store = WorkspaceStore(tmp_path / "ws", lock_timeout=0.2, hold_lock=True)
    run_id = store.begin_run("mine")
    code = f"""
        from nirs4all_store import WorkspaceStore, WorkspaceLockedError
        try:
            with WorkspaceStore({str(tmp_path / "ws")!r}, lock_timeout=0.2) as s:
                print("OPEN", s.get_run({run_id!r})["name"])
        except WorkspaceLockedError as e:
            print("LOCKED", e.pid)
    """
    locked = _run_python(code)
    assert locked.stdout.startswith("LOCKED"), locked.stderr
    assert str(os.getpid()) in locked.stdout
    store.close()
    opened = _run_python(code)
    assert opened.stdout.strip() == "OPEN mine", opened.stderr


def test_timestamps_are_utc_whatever_the_process_time_zone(tmp_path: Path) -> None:
    code = f"""
        import datetime as dt
        from nirs4all_store import WorkspaceStore
        with WorkspaceStore({str(tmp_path / "ws")!r}) as s:
            rid = s.begin_run("tz")
            created = s.get_run(rid)["created_at"]
            now = dt.datetime.now(dt.timezone.utc)
            assert created.utcoffset() == dt.timedelta(0), created
            assert abs((now - created).total_seconds()) < 60, (now, created)
            print(created.isoformat())
    """
    berlin = _run_python(code, TZ="Europe/Berlin")
    assert berlin.returncode == 0, berlin.stderr
    tokyo = _run_python(code.replace('"tz"', '"tz2"'), TZ="Asia/Tokyo")
    assert tokyo.returncode == 0, tokyo.stderr
    with WorkspaceStore(tmp_path / "ws") as store:
        stamps = sorted(r["created_at"] for r in store.list_runs().to_pylist())
    assert len(stamps) == 2 and (stamps[1] - stamps[0]).total_seconds() < 60
