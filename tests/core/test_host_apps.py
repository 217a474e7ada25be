"""Living inside larger applications (issue 14): read-only handles, readers while a run
writes (real processes), shared databases, schemas, downgrade round trips, concurrent first
opens, heartbeats, status, change tokens, counts and pool settings, on real backends."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import record_pipeline

from nirs4all_store import WorkspaceStore
from nirs4all_store.db.engine import create_store_engine, pool_settings_from_env
from nirs4all_store.db.migrate import HEAD_REVISION, current_revision, downgrade, upgrade
from nirs4all_store.errors import ReadOnlyStoreError, UnknownSchemaError, WorkspaceNotFoundError


def writer_script(tmp_path: Path, workspace: Path, url: str | None, n_pipelines: int) -> Path:
    script = tmp_path / "writer.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from sklearn.cross_decomposition import PLSRegression
            from sklearn.preprocessing import MinMaxScaler, StandardScaler
            from nirs4all_store import WorkspaceStore, run, synthetic_nirs

            store = WorkspaceStore({str(workspace)!r}, url={url!r}, lock_timeout=60)
            pipelines = [
                [scaler(), PLSRegression(n)]
                for n in range(1, {n_pipelines} // 2 + 2)
                for scaler in (MinMaxScaler, StandardScaler)
            ][: {n_pipelines}]
            result = run(pipelines, synthetic_nirs(120, 300, seed=1), workspace=store, cv=3,
                         verbose=0)
            print("DONE", result.run_id, flush=True)
            store.close()
            """
        )
    )
    return script


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", ["duckdb", "sqlite"])
def test_readers_answer_while_run_records(tmp_path: Path, backend_name: str) -> None:
    """A second process lists runs, queries predictions and loads arrays while run() records
    into the same workspace; every read answers (none is locked out: each waits at most
    for the writer's current commit) and the writer loses nothing. The latency itself is
    measured by benchmarks/bench_readers.py, not asserted here."""
    workspace = tmp_path / "ws"
    url = None if backend_name == "duckdb" else f"sqlite:///{tmp_path / 'store.sqlite'}"
    WorkspaceStore(workspace, url=url).close()  # created before the writer starts
    script = writer_script(tmp_path, workspace, url, 12)
    writer = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    latencies: list[float] = []
    seen_predictions = 0
    try:
        while writer.poll() is None:
            started = time.perf_counter()
            with WorkspaceStore(workspace, url=url, read_only=True, lock_timeout=5) as reader:
                runs = reader.list_runs()
                predictions = reader.query_predictions(partition="val", limit=5)
                if predictions.num_rows:
                    pid = predictions.column("prediction_id")[0].as_py()
                    assert reader.get_prediction(pid, load_arrays=True)["y_pred"] is not None
                seen_predictions = max(seen_predictions, reader.count_predictions())
            latencies.append(time.perf_counter() - started)
            assert runs.num_rows <= 1
            time.sleep(0.2)
        out, err = writer.communicate(timeout=120)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.returncode == 0, err
    assert out.startswith("DONE"), err
    run_id = out.split()[1]
    assert len(latencies) >= 3, "the writer finished before the readers could try"
    assert max(latencies) < 5.0, latencies  # 5 s: the readers' lock_timeout, never reached
    with WorkspaceStore(workspace, url=url, read_only=True) as reader:
        assert reader.get_run(run_id)["status"] == "completed"
        assert reader.count_pipelines(run_id=run_id) == 12
        assert reader.verify().ok
    assert seen_predictions > 0, "no reader saw a prediction while the run recorded"


def test_a_long_lived_store_does_not_block_other_processes(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    notebook = WorkspaceStore(workspace)  # default: the file is released when idle
    run_id = notebook.begin_run("notebook")
    time.sleep(1.0)
    code = f"""
        from nirs4all_store import WorkspaceStore
        with WorkspaceStore({str(workspace)!r}, lock_timeout=2) as s:
            print(s.get_run({run_id!r})["name"], s.begin_run("other process"))
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("notebook ")
    assert notebook.count_runs() == 2  # and the notebook's store still works after it
    notebook.close()


def test_read_only_never_creates_and_refuses_writes(
    open_store: Callable[..., WorkspaceStore], tmp_path: Path
) -> None:
    with pytest.raises(WorkspaceNotFoundError, match="never creates"):
        WorkspaceStore(tmp_path / "missing", read_only=True)
    assert not (tmp_path / "missing").exists()
    writer = open_store()
    recorded = record_pipeline(writer)
    writer.close()
    reader = open_store(read_only=True)
    assert reader.get_run(recorded.run_id)["status"] == "running"
    assert reader.count_predictions(run_id=recorded.run_id) == len(recorded.prediction_ids)
    with pytest.raises(ReadOnlyStoreError, match="begin_run writes"):
        reader.begin_run("nope")
    with pytest.raises(ReadOnlyStoreError, match="save_artifacts"):
        reader.save_artifact({"a": 1})
    with pytest.raises(ReadOnlyStoreError, match="delete_run"):
        reader.delete_run(recorded.run_id)
    assert isinstance(ReadOnlyStoreError("x"), PermissionError)
    assert reader.load_artifact(recorded.artifact_ids[0]) is not None
    assert reader.verify().ok


def test_sqlite_reads_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    """Reads begin DEFERRED: a writer holding the write lock does not stall them (before the
    change every transaction began IMMEDIATE and waited for the busy timeout)."""
    db = tmp_path / "store.sqlite"
    store = WorkspaceStore(tmp_path / "ws", url=f"sqlite:///{db}")
    run_id = store.begin_run("r")
    other = sqlite3.connect(db, isolation_level=None, timeout=1)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE runs SET name = 'being changed'")
    try:
        started = time.perf_counter()
        assert store.get_run(run_id)["name"] == "r"
        assert store.list_runs().num_rows == 1
        assert time.perf_counter() - started < 2.0
    finally:
        other.execute("ROLLBACK")
        other.close()
        store.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_store_lives_beside_a_hosts_tables(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.sqlite'}"
    else:
        from conftest import fresh_pg_database

        url = fresh_pg_database(request.getfixturevalue("pg_url"), None)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE app_users (id INTEGER PRIMARY KEY, email TEXT)"))
        conn.execute(sa.text("INSERT INTO app_users VALUES (1, 'a@b.c')"))
    with WorkspaceStore(tmp_path / "ws", url=url) as store:
        store.begin_run("beside the host")
        assert store.status()["schema_revision"] == HEAD_REVISION
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT email FROM app_users")).scalar() == "a@b.c"
        conn.execute(sa.text("CREATE TABLE pipelines_extra (x INTEGER)"))
    engine.dispose()
    with WorkspaceStore(tmp_path / "ws", url=url) as store:
        assert store.count_runs() == 1


def test_postgresql_schema_option_puts_every_store_table_there(pg_url: str, tmp_path: Path) -> None:
    from conftest import fresh_pg_database

    url = fresh_pg_database(pg_url, None)
    with WorkspaceStore(tmp_path / "a", url=url, schema="lab_a") as a:
        a.begin_run("in lab_a")
    with WorkspaceStore(tmp_path / "b", url=url, schema="lab_b") as b:
        assert b.count_runs() == 0
    engine = sa.create_engine(url)
    inspector = sa.inspect(engine)
    assert "runs" in inspector.get_table_names(schema="lab_a")
    assert "nirs4all_store_version" in inspector.get_table_names(schema="lab_a")
    assert "runs" not in inspector.get_table_names(schema="public")
    engine.dispose()
    with pytest.raises(ValueError, match="schema= is a PostgreSQL option"):
        WorkspaceStore(tmp_path / "c", url=f"sqlite:///{tmp_path / 'c.sqlite'}", schema="x")
    with pytest.raises(ValueError, match="plain SQL identifier"):
        WorkspaceStore(tmp_path / "d", url=url, schema="bad; drop")


def test_a_store_named_table_of_foreign_shape_is_refused_on_postgresql(
    pg_url: str, tmp_path: Path
) -> None:
    from conftest import fresh_pg_database

    url = fresh_pg_database(pg_url, None)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE chains (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    with pytest.raises(UnknownSchemaError, match=r"\['chains'\]"):
        WorkspaceStore(tmp_path / "ws", url=url)


def test_downgrade_to_base_then_open_round_trips(
    backend: str, database_url: str | None, workspace: Path
) -> None:
    WorkspaceStore(workspace, url=database_url).close()
    url = database_url or f"duckdb:///{workspace / 'store.duckdb'}"
    engine = create_store_engine(url)
    downgrade(engine, "base")
    with engine.connect() as conn:
        assert current_revision(conn) is None
    engine.dispose()
    with WorkspaceStore(workspace, url=database_url) as store:
        store.begin_run("after a round trip")
        assert store.status()["schema_revision"] == HEAD_REVISION


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "duckdb"])
def test_four_processes_opening_an_older_workspace_migrate_it_once(
    tmp_path: Path, kind: str
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    url = (
        f"sqlite:///{tmp_path / 'store.sqlite'}"
        if kind == "sqlite"
        else f"duckdb:///{workspace / 'store.duckdb'}"
    )
    engine = create_store_engine(url)
    upgrade(engine, "0005")
    engine.dispose()
    code = f"""
        from nirs4all_store import WorkspaceStore
        with WorkspaceStore({str(workspace)!r}, url={url if kind == "sqlite" else None!r},
                            lock_timeout=60) as s:
            print(s.begin_run("concurrent open"))
    """
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    backups = sorted(p.name for p in tmp_path.rglob("*.bak-0005"))
    assert len(backups) == 1, backups
    with WorkspaceStore(workspace, url=url if kind == "sqlite" else None) as store:
        assert store.count_runs() == 4
        assert store.status()["schema_revision"] == HEAD_REVISION


def test_a_run_whose_process_died_is_reported_interrupted(
    open_store: Callable[..., WorkspaceStore], database_url: str | None, workspace: Path
) -> None:
    store = open_store()
    code = f"""
        import os, signal
        from nirs4all_store import WorkspaceStore
        s = WorkspaceStore({str(workspace)!r}, url={database_url!r}, lock_timeout=30)
        rid = s.begin_run("dies")
        s.begin_pipeline(rid, "p", dataset_name="d")
        print(rid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == -9, done.stderr
    dead = done.stdout.strip()
    alive = store.begin_run("alive")
    assert store.get_run(dead)["status"] == "running"  # its heartbeat is still fresh
    time.sleep(1.2)
    store.heartbeat(alive)
    assert store.reap_stale_runs(older_than=1.0) == [dead]
    assert store.get_run(dead)["status"] == "interrupted"
    assert "no heartbeat" in store.get_run(dead)["error"]
    assert store.get_run(alive)["status"] == "running"
    assert store.list_runs(status="interrupted").column("run_id").to_pylist() == [dead]
    assert store.count_runs(status="interrupted") == 1
    with pytest.raises(ValueError, match="older_than"):
        store.reap_stale_runs(older_than=float("nan"))


def test_reader_reports_interrupted_before_any_reap(
    store: WorkspaceStore, database_url: str | None
) -> None:
    run_id = store.begin_run("stale")
    with store.transaction() as session:
        session.execute(
            sa.text("UPDATE runs SET heartbeat_at = :t, created_at = :t WHERE run_id = :r"),
            {"t": "2000-01-01 00:00:00", "r": run_id},
        )
    assert store.get_run(run_id)["status"] == "interrupted"
    assert store.list_runs(status="running").num_rows == 0


def test_change_token_status_and_counts(store: WorkspaceStore) -> None:
    first = store.change_token()
    assert store.change_token() == first  # reading changes nothing
    recorded = record_pipeline(store)
    second = store.change_token()
    assert second != first
    store.complete_run(recorded.run_id)
    third = store.change_token()
    assert third != second
    status = store.status()
    assert status["counts"]["runs"] == 1 and status["counts"]["chains"] == 1
    assert status["counts"]["predictions"] == store.count_predictions()
    assert status["schema_revision"] == status["head_revision"] == HEAD_REVISION
    assert status["pending_migration"] is False and status["change_token"] == third
    assert status["artifact_files"] == store.count_artifacts() >= 1
    assert status["last_write"] is not None and status["backend"] == store.engine.dialect.name
    assert store.count_runs() == store.list_runs().num_rows == 1
    assert store.count_pipelines(run_id=recorded.run_id) == 1
    assert (
        store.count_predictions(partition="val")
        == store.query_predictions(partition="val").num_rows
    )
    assert store.count_chains(recorded.pipeline_id) == 1
    with pytest.raises(ValueError, match="unknown prediction filter"):
        store.count_predictions(colour="red")


def test_pool_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, pg_url: str, tmp_path: Path
) -> None:
    from conftest import fresh_pg_database

    monkeypatch.setenv("NIRS4ALL_STORE_POOL", "null")
    url = fresh_pg_database(pg_url, None)
    with WorkspaceStore(tmp_path / "ws", url=url) as store:
        assert isinstance(store.engine.pool, sa.pool.NullPool)
        store.begin_run("hpc worker")
    monkeypatch.setenv("NIRS4ALL_STORE_POOL_SIZE", "many")
    with pytest.raises(ValueError, match="NIRS4ALL_STORE_POOL_SIZE must be an integer"):
        pool_settings_from_env()
    with pytest.raises(ValueError, match="poolclass must be one of"):
        WorkspaceStore(tmp_path / "ws", url=url, pool={"poolclass": "weird"})
    with WorkspaceStore(tmp_path / "ws", url=url, pool={"pool_size": 2, "pool_recycle": 60}) as s:
        assert s.engine.pool.size() == 2


def test_engine_is_disposed_in_a_forked_child(tmp_path: Path) -> None:
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    store = WorkspaceStore(tmp_path / "ws", url=f"sqlite:///{tmp_path / 's.sqlite'}")
    run_id = store.begin_run("parent")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own connections, the parent's untouched
        os.close(read)
        try:
            name = store.get_run(run_id)["name"]
            os.write(write, name.encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 100) == b"parent"
    os.close(read)
    assert store.get_run(run_id)["name"] == "parent"
    store.close()


def test_every_list_pages_in_sql_with_a_matching_count(store: WorkspaceStore) -> None:
    first = record_pipeline(store, seed=0)
    record_pipeline(store, first.run_id, seed=1)
    for i in range(3):
        store.log_step(first.pipeline_id, 10 + i, "Extra", "event")
    log = store.get_pipeline_log(first.pipeline_id)
    assert store.get_pipeline_log(first.pipeline_id, limit=2, offset=1).to_pylist() == (
        log.slice(1, 2).to_pylist()
    )
    chains = store.get_chains_for_pipeline(first.pipeline_id)
    assert chains.num_rows == store.count_chains(first.pipeline_id) == 1
    assert store.get_chains_for_pipeline(first.pipeline_id, offset=1).num_rows == 0
    artifacts = store.list_artifacts()
    assert artifacts.num_rows == store.count_artifacts()
    assert store.list_artifacts(limit=1, offset=1).to_pylist() == artifacts.slice(1, 1).to_pylist()
    assert (
        store.count_pipelines(run_id=first.run_id)
        == store.list_pipelines(run_id=first.run_id).num_rows
        == 2
    )
    with pytest.raises(ValueError, match="limit must be >= 0"):
        store.get_pipeline_log(first.pipeline_id, limit=-1)
