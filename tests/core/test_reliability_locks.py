"""Issue 15, items 1 and 2: the artifact lock against concurrent transactions.

Item 1: `verify(repair=True)` must never delete the file of an artifact that a concurrent
transaction is committing (an old orphan file of the same bytes is reused by the save).
Item 2: a transaction that saves artifacts and a `delete_run` / `gc_artifacts` / `verify` in
another process must both finish (in seconds), on PostgreSQL and SQLite: one lock order.
Real processes on SQLite and PostgreSQL; threads of one process on DuckDB (one DuckDB file
admits one process).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import BACKENDS

from nirs4all_store import WorkspaceStore
from nirs4all_store.artifacts.files import ArtifactFiles, serialize

OBJ = {"model": "old-orphan", "values": list(range(20))}
OTHER = {"model": "second", "values": list(range(30))}

ROLES = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path

    def wait_for(path, timeout=30.0):
        end = time.monotonic() + timeout
        while not Path(path).exists():
            if time.monotonic() > end:
                raise TimeoutError(path)
            time.sleep(0.01)

    def writer(store, pipeline_id, obj, other, signal, hold):
        # One transaction: save (reusing an old file), let the other side start, save more.
        with store.transaction():
            aid = store.save_artifact(obj, format="pickle")
            Path(signal).touch()
            time.sleep(hold)
            bid = store.save_artifact(other, format="pickle")
            store.save_chain(pipeline_id, [{"s": 0}], 0, "M",
                             shared_artifacts={"a": aid, "b": bid})
        return aid, bid

    def maintainer(store, what, arg, signal):
        wait_for(signal)
        if what == "verify":
            return store.verify(repair=True, grace_seconds=60).removed_orphans
        if what == "delete_run":
            return store.delete_run(arg)
        return store.gc_artifacts(grace_seconds=0)

    if __name__ == "__main__":
        import ast
        from nirs4all_store import WorkspaceStore
        role, workspace, url = sys.argv[1:4]
        url = None if url == "-" else url
        with WorkspaceStore(workspace, url=url) as store:
            if role == "writer":
                pipeline_id, obj, other, signal, hold = sys.argv[4:9]
                out = writer(store, pipeline_id, ast.literal_eval(obj),
                             ast.literal_eval(other), signal, float(hold))
            else:
                what, arg, signal = sys.argv[4:7]
                out = maintainer(store, what, arg, signal)
        print(repr(out), flush=True)
    """
)

DEADLINE = 60.0  # seconds; the fixed code finishes in a few, the deadlock never did


def _old_orphan(store: WorkspaceStore, obj: Any) -> Path:
    """The file of `obj` with no row, an hour old: as left by a run killed long ago."""
    _, relpath = ArtifactFiles(store.artifacts_path).put(serialize(obj, "pickle"), "pickle")
    path = store.artifacts_path / relpath
    old = time.time() - 7200
    os.utime(path, (old, old))
    return path


def _run_pair(
    tmp_path: Path,
    workspace: Path,
    url: str | None,
    writer_args: list[str],
    maintainer_args: list[str],
) -> tuple[str, str, float]:
    """Writer and maintainer as two real processes; returns their outputs and the time."""
    script = tmp_path / "roles.py"
    script.write_text(ROLES)
    base = [sys.executable, str(script)]
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [*base, role, str(workspace), url or "-", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role, args in (("maintainer", maintainer_args), ("writer", writer_args))
    ]
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=DEADLINE)
            assert proc.returncode == 0, err[-3000:]
            outputs.append(out.strip())
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
            proc.communicate()
        pytest.fail(f"deadlock: the two processes did not finish in {DEADLINE} s")
    return outputs[1], outputs[0], time.monotonic() - started


def _in_threads(store: WorkspaceStore, writer_args: tuple, maintainer_args: tuple) -> Any:
    """The same roles as two threads sharing one store (DuckDB: one process per file)."""
    roles: dict[str, Any] = {}
    exec(compile(ROLES, "roles", "exec"), roles)  # the roles without their __main__ part
    results: dict[str, Any] = {}

    def call(name: str, fn: Any, args: tuple) -> None:
        results[name] = fn(store, *args)

    threads = [
        threading.Thread(target=call, args=("m", roles["maintainer"], maintainer_args)),
        threading.Thread(target=call, args=("w", roles["writer"], writer_args)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
        assert not t.is_alive(), "deadlock between the two threads"
    return results["w"]


MULTI_PROCESS = [b for b in ("sqlite", "postgresql") if b in BACKENDS]


@pytest.mark.parametrize("backend", MULTI_PROCESS)
def test_verify_repair_spares_file_of_committing_transaction_processes(
    backend: str, open_store: Any, workspace: Path, database_url: str, tmp_path: Path
) -> None:
    store = open_store()
    pipeline_id = store.begin_pipeline(store.begin_run("r"), "p", dataset_name="d")
    orphan = _old_orphan(store, OBJ)
    signal = tmp_path / "saved"
    out, removed, _ = _run_pair(
        tmp_path,
        workspace,
        database_url,
        [pipeline_id, repr(OBJ), repr(OTHER), str(signal), "2.0"],
        ["verify", "-", str(signal)],
    )
    aid, _ = eval(out)
    assert orphan.is_file(), f"verify removed {removed}: the committed artifact's file"
    assert store.load_artifact(aid) == OBJ
    assert store.verify().ok


@pytest.mark.skipif("duckdb" not in BACKENDS, reason="duckdb not selected")
def test_verify_repair_spares_file_of_committing_transaction_threads_duckdb(
    tmp_path: Path,
) -> None:
    with WorkspaceStore(tmp_path / "ws") as store:
        pipeline_id = store.begin_pipeline(store.begin_run("r"), "p", dataset_name="d")
        orphan = _old_orphan(store, OBJ)
        signal = tmp_path / "saved"
        aid, _ = _in_threads(
            store, (pipeline_id, OBJ, OTHER, str(signal), 1.0), ("verify", "-", str(signal))
        )
        assert orphan.is_file(), "verify removed the committed artifact's file"
        assert store.load_artifact(aid) == OBJ
        assert store.verify().ok


@pytest.mark.parametrize("what", ["delete_run", "gc", "verify"])
@pytest.mark.parametrize("backend", MULTI_PROCESS)
def test_transaction_and_maintenance_never_deadlock(
    backend: str,
    what: str,
    open_store: Any,
    workspace: Path,
    database_url: str,
    tmp_path: Path,
) -> None:
    """The writer holds the database (rows of X touched) while it saves Y; the other process
    deletes the run referencing X: both finish in seconds, nothing committed is lost."""
    store = open_store()
    old_run = store.begin_run("old")
    x = store.save_artifact(OBJ, format="pickle")
    store.save_chain(
        store.begin_pipeline(old_run, "p", dataset_name="d"),
        [{}],
        0,
        "M",
        shared_artifacts={"x": x},
    )
    pipeline_id = store.begin_pipeline(store.begin_run("new"), "p", dataset_name="d")
    signal = tmp_path / "saved"
    out, _, elapsed = _run_pair(
        tmp_path,
        workspace,
        database_url,
        [pipeline_id, repr(OBJ), repr(OTHER), str(signal), "1.0"],
        [what, old_run, str(signal)],
    )
    assert elapsed < 30, f"took {elapsed:.1f} s"
    aid, bid = eval(out)
    assert aid == x
    assert store.load_artifact(aid) == OBJ
    assert store.load_artifact(bid) == OTHER
    report = store.verify()
    assert report.ok, report.problems()
