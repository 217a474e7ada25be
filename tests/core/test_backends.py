"""Backend-specific behaviour: what each engine is given, checked in the real database.

PostgreSQL: JSONB, arrays as raw bytes (bytea), foreign keys with ON DELETE CASCADE,
no implicit migration of an older schema. SQLite: WAL, foreign keys, busy timeout,
BEGIN IMMEDIATE. DuckDB: no foreign keys in its DDL (the repositories cascade). The URL can
come from NIRS4ALL_STORE_URL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pytest
import sqlalchemy as sa
from conftest import BACKENDS, fresh_pg_database

from nirs4all_store import MigrationRequiredError, WorkspaceStore
from nirs4all_store.db import migrate
from nirs4all_store.db.engine import SQLITE_BUSY_TIMEOUT_MS, URL_ENV_VAR, create_store_engine

# Every foreign key of the schema: (table, column, referred table).
FOREIGN_KEYS = {
    ("pipelines", "run_id", "runs"),
    ("chains", "pipeline_id", "pipelines"),
    ("predictions", "pipeline_id", "pipelines"),
    ("predictions", "chain_id", "chains"),
    ("prediction_arrays", "prediction_id", "predictions"),
    ("logs", "pipeline_id", "pipelines"),
}
SERVER_AND_SQLITE = [b for b in ("sqlite", "postgresql") if b in BACKENDS]


def fill(store: WorkspaceStore) -> str:
    """A run with one pipeline, chain, prediction (with arrays) and log; returns the run id."""
    run_id = store.begin_run("r")
    pipeline_id = store.begin_pipeline(run_id, "p", dataset_name="ds")
    artifact = store.save_artifact({"w": [1.0, 2.0]}, format="pickle")
    chain_id = store.save_chain(
        pipeline_id, [{"c": "PLS"}], 0, "PLS", fold_artifacts={"0": artifact}
    )
    store.save_predictions(
        [
            {
                "pipeline_id": pipeline_id,
                "chain_id": chain_id,
                "dataset_name": "ds",
                "model_name": "PLS",
                "model_class": "PLSRegression",
                "fold_id": "0",
                "partition": "val",
                "val_score": 0.5,
                "metric": "rmse",
                "task_type": "regression",
                "scores": {"val": {"rmse": 0.5}},
                "y_true": np.array([1.0, np.nan, 3.0]),
                "y_pred": np.array([1.5, 2.0, 2.5]),
                "y_proba": np.array([[0.1, 0.9], [0.5, 0.5], [1.0, 0.0]]),
            }
        ]
    )
    store.log_step(pipeline_id, 0, "PLS", "fit")
    return run_id


def table_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {name}")).scalar_one())
            for name in ("runs", "pipelines", "chains", "predictions", "prediction_arrays", "logs")
        }


# -- PostgreSQL -------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["postgresql"] if "postgresql" in BACKENDS else [])
def test_postgresql_column_types(backend: str, store: WorkspaceStore) -> None:
    query = sa.text(
        "SELECT table_name, column_name, data_type, udt_name FROM information_schema.columns "
        "WHERE table_schema = current_schema()"
    )
    with store.engine.connect() as conn:
        types = {
            (r.table_name, r.column_name): (r.data_type, r.udt_name) for r in conn.execute(query)
        }
    for column in ("scores", "best_params"):
        assert types[("predictions", column)] == ("jsonb", "jsonb")
    for table, column in (("runs", "config"), ("chains", "steps"), ("logs", "details")):
        assert types[(table, column)] == ("jsonb", "jsonb")
    for column in ("y_true", "y_pred", "y_proba", "sample_indices", "weights"):
        assert types[("prediction_arrays", column)] == ("bytea", "bytea"), column  # rev. 0008
    assert types[("predictions", "val_score")][0] == "double precision"

    # Arrays are the raw little-endian items (NaN kept), y_proba prefixed by its column count.
    fill(store)
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT y_true, y_proba, scores -> 'val' ->> 'rmse' AS rmse "
                "FROM prediction_arrays JOIN predictions USING (prediction_id)"
            )
        ).one()
    np.testing.assert_array_equal(np.frombuffer(row.y_true, "<f8"), [1.0, np.nan, 3.0])
    assert np.frombuffer(row.y_proba, "<i8", count=1)[0] == 2
    assert np.frombuffer(row.y_proba, "<f8", offset=8).tolist() == [0.1, 0.9, 0.5, 0.5, 1.0, 0.0]
    assert row.rmse == "0.5"


@pytest.mark.parametrize("backend", SERVER_AND_SQLITE)
def test_foreign_keys_cascade_on_delete(backend: str, store: WorkspaceStore) -> None:
    inspector = sa.inspect(store.engine)
    found = set()
    for table, column, referred in FOREIGN_KEYS:
        fks = [
            fk for fk in inspector.get_foreign_keys(table) if fk["constrained_columns"] == [column]
        ]
        assert len(fks) == 1, (table, column, fks)
        assert fks[0]["referred_table"] == referred
        assert (fks[0].get("options") or {}).get("ondelete", "").upper() == "CASCADE", fks[0]
        found.add((table, column, referred))
    assert found == FOREIGN_KEYS

    # The database itself cascades: deleting the run row in plain SQL removes everything below.
    run_id = fill(store)
    assert set(table_counts(store.engine).values()) == {1}
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM runs WHERE run_id = :r"), {"r": run_id})
    assert set(table_counts(store.engine).values()) == {0}

    # ... and refuses dangling references.
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO pipelines "
                "(pipeline_id, run_id, name, dataset_name, status, created_at) "
                "VALUES ('p1', 'no-such-run', 'p', 'ds', 'running', CURRENT_TIMESTAMP)"
            )
        )


@pytest.mark.parametrize("backend", ["postgresql"] if "postgresql" in BACKENDS else [])
def test_older_server_database_is_not_migrated_implicitly(
    backend: str, pg_url: str, workspace: Path
) -> None:
    url = fresh_pg_database(pg_url, None)
    engine = create_store_engine(url)
    try:
        migrate.upgrade(engine, "0001")
        with pytest.raises(MigrationRequiredError) as raised:
            WorkspaceStore(workspace, url=url)
        message = str(raised.value)
        assert "nirs4all-store db upgrade --url" in message
        assert "'0001'" in message and repr(migrate.HEAD_REVISION) in message
        with engine.connect() as conn:
            assert migrate.current_revision(conn) == "0001"  # untouched
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    with WorkspaceStore(workspace, url=url) as store:
        fill(store)
        assert table_counts(store.engine)["predictions"] == 1


# -- SQLite -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite"] if "sqlite" in BACKENDS else [])
def test_sqlite_pragmas_on_every_connection(backend: str, store: WorkspaceStore) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
    db_file = Path(store.engine.url.database or "")
    assert db_file.is_file()
    # WAL is a property of the file: another client sees it too.
    with sqlite3.connect(db_file) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("backend", ["sqlite"] if "sqlite" in BACKENDS else [])
def test_sqlite_transactions_take_the_write_lock_at_begin(
    backend: str, store: WorkspaceStore
) -> None:
    """BEGIN IMMEDIATE: a transaction that has only read still blocks other writers, so two
    read-then-write transactions cannot both proceed and lose an update."""
    run_id = store.begin_run("r")
    db_file = Path(store.engine.url.database or "")
    other = sqlite3.connect(db_file, timeout=0, isolation_level=None)
    try:
        with store.transaction():
            assert store.get_run(run_id) is not None  # a read only
            with pytest.raises(sqlite3.OperationalError, match="database is locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # free again after commit
        other.execute("ROLLBACK")
    finally:
        other.close()


@pytest.mark.parametrize("backend", ["sqlite"] if "sqlite" in BACKENDS else [])
def test_sqlite_older_database_is_upgraded_with_backup(backend: str, tmp_path: Path) -> None:
    db_file = tmp_path / "old.sqlite"
    url = f"sqlite:///{db_file}"
    engine = create_store_engine(url)
    try:
        migrate.upgrade(engine, "0001")
    finally:
        engine.dispose()
    with WorkspaceStore(tmp_path / "ws", url=url) as store, store.engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.HEAD_REVISION
    backup = db_file.with_name(f"{db_file.name}.bak-0001")
    with sqlite3.connect(backup) as old:
        assert old.execute("SELECT version_num FROM nirs4all_store_version").fetchone() == ("0001",)


# -- URL from the environment -----------------------------------------------------------------
def test_store_url_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db_file = tmp_path / "from_env.sqlite"
    monkeypatch.setenv(URL_ENV_VAR, f"sqlite:///{db_file}")
    workspace = tmp_path / "ws"
    with WorkspaceStore(workspace) as store:
        assert store.engine.dialect.name == "sqlite"
        run_id = store.begin_run("via env")
    assert not (workspace / "store.duckdb").exists()
    assert (workspace / "artifacts").is_dir()  # artifacts stay in the workspace folder
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("SELECT name FROM runs WHERE run_id = ?", (run_id,)).fetchone() == (
            "via env",
        )

    # An explicit url= wins over the environment (in a workspace of its own: one artifacts
    # folder belongs to one database).
    explicit = tmp_path / "explicit.sqlite"
    with WorkspaceStore(tmp_path / "ws_explicit", url=f"sqlite:///{explicit}") as store:
        assert Path(store.engine.url.database or "") == explicit
        assert store.list_runs().num_rows == 0


def test_blank_environment_url_means_duckdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(URL_ENV_VAR, "  ")
    with WorkspaceStore(tmp_path / "ws") as store:
        assert store.engine.dialect.name == "duckdb"
    assert (tmp_path / "ws" / "store.duckdb").is_file()


# -- DuckDB -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["duckdb"] if "duckdb" in BACKENDS else [])
def test_duckdb_default_has_no_foreign_keys(
    backend: str, open_store: Callable[..., WorkspaceStore], workspace: Path
) -> None:
    store = open_store()
    assert store.engine.dialect.name == "duckdb"
    run_id = fill(store)
    # The store cascades itself: deleting the run with the API leaves nothing below.
    store.delete_run(run_id)
    assert set(table_counts(store.engine).values()) == {0}
    fill(store)
    store.close()

    with duckdb.connect(str(workspace / "store.duckdb")) as conn:
        fks = conn.execute(
            "SELECT table_name FROM duckdb_constraints() WHERE constraint_type = 'FOREIGN KEY'"
        ).fetchall()
        assert fks == []
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM duckdb_columns() "
                "WHERE table_name = 'prediction_arrays'"
            ).fetchall()
        )
        assert types["y_true"] == "DOUBLE[]"
        assert types["y_proba"] == "DOUBLE[][]"
        # Without FKs, DuckDB lets a parent go before its children (the store orders deletes).
        conn.execute("DELETE FROM runs")
        assert conn.execute("SELECT COUNT(*) FROM pipelines").fetchone() == (1,)
