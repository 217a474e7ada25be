"""`db downgrade` backs a file database up first, and a downgrade to base then an upgrade
round-trips (issue 14)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nirs4all_store import WorkspaceStore
from nirs4all_store.db.migrate import HEAD_REVISION


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nirs4all_store", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_downgrade_backs_up_then_round_trips(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    url = f"sqlite:///{db}"
    with WorkspaceStore(tmp_path / "ws", url=url) as store:
        run_id = store.begin_run("kept in the backup")
    done = cli("db", "downgrade", "base", "--yes", "--url", url)
    assert done.returncode == 0, done.stderr
    backup = tmp_path / f"store.sqlite.bak-{HEAD_REVISION}"
    assert f"backup: {backup}" in done.stderr
    with WorkspaceStore(tmp_path / "restored", url=f"sqlite:///{backup}", read_only=True) as old:
        assert old.get_run(run_id)["name"] == "kept in the backup"
    done = cli("db", "upgrade", "--url", url)
    assert done.returncode == 0, done.stderr
    with WorkspaceStore(tmp_path / "ws", url=url) as store:
        assert store.count_runs() == 0
        store.begin_run("after the round trip")
