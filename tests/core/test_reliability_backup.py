"""Issue 15, item 3: the backup taken before an implicit upgrade never blocks the workspace.

A backup left by an earlier refused or killed upgrade is replaced (SQLite refused every
later open with "output file already exists"), temporaries of killed backups are removed
(DuckDB left `.tmp-*.bak-*` files for good), and a refused upgrade is a SchemaVersionError.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from pathlib import Path

import pytest
from helpers import prediction_record

from nirs4all_store import WorkspaceStore
from nirs4all_store.db import migrate
from nirs4all_store.db.engine import create_store_engine, duckdb_url
from nirs4all_store.errors import SchemaVersionError


def _at(url: str, revision: str) -> None:
    engine = create_store_engine(url)
    try:
        migrate.upgrade(engine, revision)
    finally:
        engine.dispose()


def _revision_of(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("SELECT version_num FROM nirs4all_store_version").fetchone()[0])


def _aged(path: Path, data: bytes = b"partial") -> Path:
    path.write_bytes(data)
    old = time.time() - 3600
    os.utime(path, (old, old))
    return path


def test_a_leftover_sqlite_backup_never_blocks_the_upgrade(tmp_path: Path) -> None:
    db_file = tmp_path / "old.sqlite"
    url = f"sqlite:///{db_file}"
    _at(url, "0001")
    backup = db_file.with_name("old.sqlite.bak-0001")
    backup.write_bytes(b"a partial backup of an earlier, killed upgrade")
    killed = _aged(tmp_path / ".tmp-0123456789abcdef.old.sqlite.bak-0001")
    with WorkspaceStore(tmp_path / "ws", url=url) as store:
        assert store.list_runs().num_rows == 0
    assert _revision_of(db_file) == migrate.HEAD_REVISION
    assert _revision_of(backup) == "0001"  # replaced whole by a good backup
    assert not killed.exists()
    assert not list(tmp_path.glob(".tmp-*"))


def test_duckdb_backup_temporaries_of_killed_upgrades_are_removed(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    _at(str(duckdb_url(workspace / "store.duckdb")), "0004")
    old_style = _aged(workspace / ".tmp-0123456789abcdef.bak-0004")
    young_other = workspace / ".tmp-fedcba9876543210.bak-0004"
    young_other.write_bytes(b"maybe another file's backup in flight")
    with WorkspaceStore(workspace):
        pass
    assert (workspace / "store.duckdb.bak-0004").is_file()
    assert not old_style.exists()
    assert young_other.exists()  # too young to be judged a leftover of this database
    assert [p.name for p in workspace.glob(".tmp-*")] == [young_other.name]


def test_a_refused_upgrade_is_a_schema_version_error_and_can_be_retried(tmp_path: Path) -> None:
    db_file = tmp_path / "dup.sqlite"
    url = f"sqlite:///{db_file}"
    with WorkspaceStore(tmp_path / "ws", url=url) as store:
        pipeline_id = store.begin_pipeline(store.begin_run("r"), "p", dataset_name="wheat")
        store.save_predictions([prediction_record(pipeline_id, None)])
    engine = create_store_engine(url)
    try:
        migrate.downgrade(engine, "0004")
    finally:
        engine.dispose()
    with sqlite3.connect(db_file) as conn:  # a duplicate natural key, possible at 0004
        columns = [r[1] for r in conn.execute("PRAGMA table_info(predictions)")]
        row = list(conn.execute("SELECT * FROM predictions").fetchone())
        row[columns.index("prediction_id")] = str(uuid.uuid4())
        conn.execute(f"INSERT INTO predictions VALUES ({', '.join('?' * len(row))})", row)
    for _ in range(2):  # the second attempt is refused the same way, not by the backup
        with pytest.raises(SchemaVersionError, match="cannot upgrade"):
            WorkspaceStore(tmp_path / "ws", url=url)
    assert _revision_of(db_file) == "0004"
    assert _revision_of(db_file.with_name("dup.sqlite.bak-0004")) == "0004"
