"""`WorkspaceStore(..., write_behind=...)`: row calls queued, a background thread writes them.

On every backend: reads see the calls made before them, `close()` and interpreter exit
drain the queue, the flusher writes on its own, a failed flush is raised (never lost
silently), and a SIGKILL loses at most the rows queued within the flush window (real
processes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from test_write_queue import _assert_visible, _record_one, start_child

from nirs4all_store import ConstraintError, WorkspaceStore, WriteBehindError


def test_reads_see_the_calls_made_before_them(open_store: Any) -> None:
    store = open_store(write_behind=60)  # no background flush during the test
    run_id = store.begin_run("behind")
    rec = _record_one(store, run_id)
    _assert_visible(store, run_id, rec)


def test_close_writes_what_is_queued(open_store: Any) -> None:
    store = open_store(write_behind=60)
    run_id = store.begin_run("behind")
    rec = _record_one(store, run_id)
    store.close()
    _assert_visible(open_store(), run_id, rec)


def test_the_flusher_writes_on_its_own(open_store: Any) -> None:
    writer = open_store(write_behind=0.05)
    run_id = writer.begin_run("behind")
    pipeline_id = writer.begin_pipeline(run_id, "p")
    writer.log_step(pipeline_id, 0, None, "fit")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with WorkspaceStore(writer.path, url=writer.url, lock_timeout=30) as reader:
            if reader.get_pipeline(pipeline_id) is not None:
                assert reader.get_pipeline_log(pipeline_id).num_rows == 1
                return
        time.sleep(0.05)
    pytest.fail("the background flusher never wrote the queued rows")


def test_a_failed_flush_is_raised_by_the_next_call(open_store: Any) -> None:
    behind = open_store(write_behind=60)
    direct = open_store()
    run_id = direct.begin_run("conflict")
    pipeline_id = direct.begin_pipeline(run_id, "p")
    behind.save_prediction(pipeline_id, None, "d", "PLS", "PLS", "0", "val", 0.5)  # queued
    direct.save_prediction(pipeline_id, None, "d", "PLS", "PLS", "0", "val", 0.9)  # same key
    with pytest.raises(WriteBehindError, match=r"1 queued row\(s\) were not written") as err:
        behind.count_predictions()
    assert isinstance(err.value.__cause__, ConstraintError)
    assert behind.count_predictions(run_id=run_id) == 1  # raised once; the store goes on
    behind.log_step(pipeline_id, 0, None, "fit")
    behind.flush()
    assert direct.get_pipeline_log(pipeline_id).num_rows == 1


def test_close_raises_a_failed_flush_after_releasing(open_store: Any) -> None:
    behind = open_store(write_behind=60)
    direct = open_store()
    run_id = direct.begin_run("conflict")
    pipeline_id = direct.begin_pipeline(run_id, "p")
    behind.save_prediction(pipeline_id, None, "d", "PLS", "PLS", "0", "val", 0.5)
    direct.save_prediction(pipeline_id, None, "d", "PLS", "PLS", "0", "val", 0.9)
    with pytest.raises(WriteBehindError):
        behind.close()
    assert behind._closed
    behind.close()  # closing twice is fine


def test_bad_settings_are_refused(open_store: Any, workspace: Path) -> None:
    """Refused before anything is opened or created: the workspace folder never appears."""
    for bad in (0, -1.0, "fast", None):
        with pytest.raises(ValueError, match=rf"write_behind must be .* got {bad!r}"):
            open_store(write_behind=bad)
        assert not workspace.exists()
    open_store().close()  # created, so that a read-only open finds it
    with pytest.raises(ValueError, match="write_behind needs a writable store"):
        open_store(read_only=True, write_behind=True)


_EXIT = """
from nirs4all_store import WorkspaceStore
store = WorkspaceStore({workspace!r}, url={url!r}, write_behind=60)
run_id = store.begin_run("exit")
pipeline_id = store.begin_pipeline(run_id, "p")
for i in range(50):
    store.log_step(pipeline_id, i, None, "fit")
print(pipeline_id, flush=True)
# no close(): interpreter exit drains the queue
"""


def test_interpreter_exit_writes_what_is_queued(
    workspace: Path, database_url: str | None, open_store: Any
) -> None:
    code = _EXIT.format(workspace=str(workspace), url=database_url)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    pipeline_id = done.stdout.split()[0]
    assert open_store().get_pipeline_log(pipeline_id).num_rows == 50


_KILLED = """
import time
from nirs4all_store import WorkspaceStore
store = WorkspaceStore({workspace!r}, url={url!r}, write_behind=0.1)
run_id = store.begin_run("kill")
pipeline_id = store.begin_pipeline(run_id, "p")
for i in range(200):
    store.log_step(pipeline_id, i, None, "fit")
time.sleep(2.0)  # 20 flush intervals: everything so far must be written
print(pipeline_id, flush=True)
i = 200
while True:
    store.log_step(pipeline_id, i, None, "fit")
    i += 1
"""


def test_a_sigkill_loses_at_most_the_queued_window(
    workspace: Path, database_url: str | None, open_store: Any
) -> None:
    child = start_child(_KILLED.format(workspace=str(workspace), url=database_url))
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip(), child.stderr.read() if child.stderr else "no output"
    pipeline_id = line.split()[0]
    time.sleep(0.3)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    after = open_store(lock_timeout=30)
    steps = after.get_pipeline_log(pipeline_id).column("step_idx").to_pylist()
    assert len(steps) >= 200, f"rows queued 2 s before the kill were lost: {len(steps)}"
    assert steps == list(range(len(steps))), "the rows kept are not a prefix of the calls"
    assert after.verify().ok
