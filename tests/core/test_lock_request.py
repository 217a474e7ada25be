"""A busy DuckDB writer lets a waiting process in (db.duckdb.file_lock.LockRequest).

A writer whose calls come faster than the idle release (0.25 s) never goes idle, so before
the request marker it kept the file for as long as it was busy. Real processes: a writer
that logs a step every 20 ms for ~30 s, and readers in this process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from nirs4all_store import WorkspaceStore
from nirs4all_store.errors import WorkspaceLockedError


def _busy_writer(workspace: Path, hold_lock: bool | None) -> subprocess.Popen[str]:
    code = f"""
        import sys, time
        from nirs4all_store import WorkspaceStore
        store = WorkspaceStore({str(workspace)!r}, hold_lock={hold_lock!r}, lock_timeout=60)
        run_id = store.begin_run("busy")
        pipeline_id = store.begin_pipeline(run_id, "p", expanded_config={{}}, dataset_name="d")
        print("ready", flush=True)
        end = time.monotonic() + 30
        n = 0
        while time.monotonic() < end and not sys.stdin.closed:
            store.log_step(pipeline_id, n, "Tick", "tick")
            n += 1
            time.sleep(0.02)
        store.close()
    """
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    line = writer.stdout.readline()
    assert line.strip() == "ready", writer.stderr.read() if writer.stderr else line
    return writer


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "ws"
    WorkspaceStore(folder).close()
    yield folder


def _stop(writer: subprocess.Popen[str]) -> None:
    writer.kill()
    writer.communicate(timeout=30)


def test_a_reader_gets_in_while_a_default_writer_is_busy(workspace: Path) -> None:
    writer = _busy_writer(workspace, hold_lock=None)
    try:
        for _ in range(3):
            with WorkspaceStore(workspace, read_only=True, lock_timeout=10) as reader:
                runs = reader.list_runs()
                assert runs.num_rows == 1
                assert runs.column("name")[0].as_py() == "busy"
        # A writer in this process gets in too, and its rows are there for the busy one.
        with WorkspaceStore(workspace, lock_timeout=10) as other:
            other.begin_run("second writer")
    finally:
        _stop(writer)
    with WorkspaceStore(workspace, read_only=True) as after:
        assert sorted(after.list_runs().column("name").to_pylist()) == ["busy", "second writer"]


def test_a_writer_holding_the_file_keeps_it(workspace: Path) -> None:
    """The control: hold_lock=True keeps the file for the engine's life, request or not."""
    writer = _busy_writer(workspace, hold_lock=True)
    try:
        with pytest.raises(WorkspaceLockedError, match="locked by process"):
            WorkspaceStore(workspace, read_only=True, lock_timeout=1.5)
    finally:
        _stop(writer)
