"""DuckDB workspace locking between processes (one read-write process per file).

A helper process (a real `python` running a real WorkspaceStore) holds the workspace; the
test process tries to open it. With `hold_lock=True` the holder keeps an idle pooled
connection, so the file stays locked until it closes; with `hold_lock=False` the file is
free between operations.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nirs4all_store import WorkspaceLockedError, WorkspaceStore

# The holder reads one command per line on stdin and answers one line on stdout.
HOLDER = textwrap.dedent(
    """
    import os, sys
    from nirs4all_store import WorkspaceStore

    workspace, hold = sys.argv[1], sys.argv[2] == "hold"
    store = WorkspaceStore(workspace, hold_lock=hold, lock_timeout=30)
    store.begin_run("opened by holder")
    print(f"ready {os.getpid()}", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "write":
            run_id = store.begin_run("written by holder")
            print(f"wrote {run_id}", flush=True)
        elif command == "close":
            store.close()
            print("closed", flush=True)
            break
    """
)


class Holder:
    """A child process that keeps a WorkspaceStore open on the workspace."""

    def __init__(self, workspace: Path, script: Path, hold: bool) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(workspace), "hold" if hold else "release"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = self._read()
        assert first.startswith("ready "), first
        self.pid = int(first.split()[1])
        assert self.pid == self.proc.pid

    def _read(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            stderr = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"holder process died: {stderr}")
        return line.strip()

    def ask(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.ask("close") == "closed"
            self.proc.wait(timeout=30)
        assert self.proc.returncode == 0, self.proc.stderr.read() if self.proc.stderr else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def holder_script(tmp_path: Path) -> Path:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    return script


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        holder.kill()


def start_holder(holders: list[Holder], workspace: Path, script: Path, *, hold: bool) -> Holder:
    holder = Holder(workspace, script, hold)
    holders.append(holder)
    return holder


def run_names(workspace: Path) -> list[str]:
    with WorkspaceStore(workspace, lock_timeout=5) as store:
        return sorted(store.list_runs(limit=None).column("name").to_pylist())


def test_open_waits_then_names_file_pid_and_way_out(
    workspace: Path, holder_script: Path, holders: list[Holder]
) -> None:
    holder = start_holder(holders, workspace, holder_script, hold=True)
    start = time.monotonic()
    with pytest.raises(WorkspaceLockedError) as raised:
        WorkspaceStore(workspace, lock_timeout=1)
    waited = time.monotonic() - start
    error = raised.value
    message = str(error)
    db_file = str(workspace.resolve() / "store.duckdb")
    assert db_file in message
    assert f"process {holder.pid}" in message
    assert "close the other process" in message and "SQLite/PostgreSQL" in message
    assert error.pid == holder.pid
    assert error.path == db_file
    # The lock wait is a loop until lock_timeout, not an immediate failure.
    assert waited >= 1.0, waited
    assert "waited 1." in message

    holder.close()
    with WorkspaceStore(workspace, lock_timeout=1) as store:
        names = store.list_runs().column("name").to_pylist()
    assert names == ["opened by holder"]


def test_lock_timeout_zero_fails_without_waiting(
    workspace: Path, holder_script: Path, holders: list[Holder]
) -> None:
    holder = start_holder(holders, workspace, holder_script, hold=True)
    with pytest.raises(WorkspaceLockedError) as raised:
        WorkspaceStore(workspace, lock_timeout=0)
    assert raised.value.pid == holder.pid
    holder.close()


def test_hold_lock_false_lets_another_process_in_between_operations(
    workspace: Path, holder_script: Path, holders: list[Holder]
) -> None:
    holder = start_holder(holders, workspace, holder_script, hold=False)
    # The holder is idle: the file is free, this process can open, read and write.
    with WorkspaceStore(workspace, lock_timeout=5, hold_lock=False) as store:
        assert store.list_runs().column("name").to_pylist() == ["opened by holder"]
        store.begin_run("written by test")
        # ... and the holder can write between this process's operations.
        assert holder.ask("write").startswith("wrote ")
        store.begin_run("written by test again")
    assert holder.ask("write").startswith("wrote ")
    holder.close()
    assert run_names(workspace) == [
        "opened by holder",
        "written by holder",
        "written by holder",
        "written by test",
        "written by test again",
    ]


def test_write_while_locked_raises_never_skips(
    workspace: Path, holder_script: Path, holders: list[Holder]
) -> None:
    # This process opens first without holding the file, then another process takes it.
    store = WorkspaceStore(workspace, lock_timeout=0.5, hold_lock=False)
    try:
        store.begin_run("before holder")
        holder = start_holder(holders, workspace, holder_script, hold=True)
        with pytest.raises(WorkspaceLockedError) as raised:
            store.begin_run("while locked")
        assert raised.value.pid == holder.pid
        with pytest.raises(WorkspaceLockedError):
            store.list_runs()
        holder.close()
        store.begin_run("after holder")
    finally:
        store.close()
    # The refused write is absent (it raised), the others are all there.
    assert run_names(workspace) == ["after holder", "before holder", "opened by holder"]


def test_holder_with_hold_lock_blocks_until_closed_then_reopen_works(
    workspace: Path, holder_script: Path, holders: list[Holder]
) -> None:
    holder = start_holder(holders, workspace, holder_script, hold=True)
    assert holder.ask("write").startswith("wrote ")
    with pytest.raises(WorkspaceLockedError):
        WorkspaceStore(workspace, lock_timeout=0.2, hold_lock=False)
    holder.close()
    with WorkspaceStore(workspace, lock_timeout=0.2) as store:
        store.begin_run("after")
    assert run_names(workspace) == ["after", "opened by holder", "written by holder"]
