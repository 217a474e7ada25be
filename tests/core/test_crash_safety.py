"""Crash safety: a process saving artifacts, chains and predictions (and deleting, collecting)
is SIGKILLed at random moments; after each kill the workspace opens, `verify()` finds at most
orphan files (which `repair` removes) and every committed chain loads all its artifacts.

A long-lived helper process imports the package once and forks one worker per round, so a
round costs the work, not the ~1.4 s interpreter start-up; the worker is what gets killed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from nirs4all_store import WorkspaceStore
from nirs4all_store.artifacts.files import TEMP_PREFIX
from nirs4all_store.models import Chain
from nirs4all_store.repositories.chains import artifact_refs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the helper forks its workers (POSIX)"),
]

KILLS = 20

FORK_SERVER = r"""
import os, random, sys
import numpy as np
from nirs4all_store import WorkspaceStore

workspace, url = sys.argv[1], (sys.argv[2] or None)


def work(seed):
    rng = random.Random(seed)
    store = WorkspaceStore(workspace, url=url)
    print("opened", flush=True)
    mine = []
    n = 0
    while True:
        n += 1
        run_id = store.begin_run(f"crash-{seed}-{n}")
        mine.append(run_id)
        for p in range(2):
            pipe = store.begin_pipeline(run_id, f"p{p}", dataset_name="ds")
            # Shared objects (deduplicated across rounds) and fresh ones of varied size.
            ids = [
                store.save_artifact({"k": rng.randrange(30)}, "Op", "params")
                for _ in range(rng.randint(1, 3))
            ]
            size = rng.choice([10, 1000, 50_000])
            fresh = np.random.default_rng(rng.randrange(2**32)).normal(size=size)
            fmt = rng.choice(["joblib", "pickle"])
            ids.append(store.save_artifact(fresh, "Model", "model", fmt))
            chain_id = store.save_chain(
                pipe, [{"i": 0}], 0, "Model",
                fold_artifacts={"0": ids[-1], "1": ids[:2]}, shared_artifacts={"s": ids[0]},
            )
            y = np.arange(50.0)
            store.save_predictions([
                {"pipeline_id": pipe, "chain_id": chain_id, "dataset_name": "ds",
                 "model_name": "m", "model_class": "Model", "fold_id": str(f),
                 "partition": "val", "metric": "rmse", "task_type": "regression",
                 "y_true": y, "y_pred": y + f}
                for f in range(3)
            ])
            store.log_step(pipe, 0, "Model", "fit")
            if rng.random() < 0.15:
                store.fail_pipeline(pipe, "simulated failure")
        if len(mine) > 2 and rng.random() < 0.3:
            store.delete_run(mine.pop(0), delete_artifacts=rng.random() < 0.5)
        if rng.random() < 0.15:
            old = store.list_runs(limit=3).column("run_id").to_pylist()
            if old and old[-1] not in mine:
                store.delete_run(old[-1], delete_artifacts=True)
        if rng.random() < 0.15:
            store.gc_artifacts(grace_seconds=0)


print("ready", flush=True)
for line in sys.stdin:
    seed = int(line)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            work(seed)
        except BaseException as exc:
            print(f"worker error: {exc!r}", file=sys.stderr, flush=True)
            code = 3
        os._exit(code)
    print("pid", pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print("status", status, flush=True)
"""


def all_chains(store: WorkspaceStore) -> list[tuple[str, set[str]]]:
    table = Chain.__table__
    query = sa.select(table.c.chain_id, table.c.fold_artifacts, table.c.shared_artifacts)
    with store.transaction() as session:
        rows = session.execute(query).all()
    return [(chain_id, artifact_refs(fold, shared)) for chain_id, fold, shared in rows]


def check_after_crash(workspace: Path, url: str | None) -> dict[str, Any]:
    with WorkspaceStore(workspace, url=url) as store:
        report = store.verify()
        problems = report.problems()
        orphans = problems.pop("orphan_files")
        assert all(not found for found in problems.values()), problems
        repaired = store.verify(repair=True, grace_seconds=0)
        assert repaired.ok, repaired.problems()
        assert sorted(repaired.removed_orphans) == sorted(orphans)
        assert not list(store.artifacts_path.glob(f"*/{TEMP_PREFIX}*"))
        chains = all_chains(store)
        for _chain_id, refs in chains:
            for artifact_id in refs:
                store.load_artifact(artifact_id)
                assert store.get_artifact(artifact_id)["ref_count"] >= 1  # type: ignore[index]
        assert store.verify().ok
        return {"orphans": len(orphans), "chains": len(chains)}


def test_sigkill_at_random_moments(workspace: Path, database_url: str | None, backend: str) -> None:
    if backend == "sqlite":
        database_url = f"sqlite:///{workspace / 'store.sqlite'}"
    workspace.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-c", FORK_SERVER, str(workspace), database_url or ""],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    rng = random.Random(20240611)
    seen: list[dict[str, Any]] = []
    try:
        assert server.stdout.readline().strip() == "ready"
        for round_no in range(KILLS):
            server.stdin.write(f"{round_no}\n")
            server.stdin.flush()
            tag, pid = server.stdout.readline().split()
            assert tag == "pid"
            if rng.random() < 0.2:  # sometimes while it opens (WAL replay, schema check)
                time.sleep(rng.uniform(0.0, 0.3))
            else:  # mostly in the middle of the work
                assert server.stdout.readline().strip() == "opened"
                time.sleep(rng.uniform(0.01, 0.5))
            os.kill(int(pid), signal.SIGKILL)
            line = server.stdout.readline().split()
            while line[0] != "status":
                line = server.stdout.readline().split()
            status = int(line[1])
            # Killed, not exited on its own (an exit would mean the worker raised).
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
            seen.append(check_after_crash(workspace, database_url))
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    # The rounds did real work: chains were committed across the kills.
    assert max(s["chains"] for s in seen) > 0, seen
