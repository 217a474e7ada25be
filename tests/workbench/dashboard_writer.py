"""The other process of the live tests: `run()` recording a long run into a workspace.

    python dashboard_writer.py WORKSPACE MODE N_PIPELINES [URL]

MODE: `default` (run() opens the workspace itself, as users do), `release` (a store opened
with hold_lock=False, which frees the DuckDB file between transactions), `hold` (a store
opened with hold_lock=True, which keeps the file for the whole run) or `url` (a store
on the database URL: SQLite or PostgreSQL). Prints "started" and, at the end, "done RUN_ID".
"""

from __future__ import annotations

import sys


def main() -> None:
    from sklearn.cross_decomposition import PLSRegression

    import nirs4all_store as n4s

    workspace, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    dataset = n4s.synthetic_nirs(300, 200, seed=5)
    pipelines = [[n4s.SNV(), PLSRegression(n_components=1 + k % 30)] for k in range(count)]
    store = None
    if mode == "release":
        store = n4s.WorkspaceStore(workspace, hold_lock=False, lock_timeout=60)
    elif mode == "hold":
        store = n4s.WorkspaceStore(workspace, hold_lock=True, lock_timeout=60)
    elif mode == "url":
        store = n4s.WorkspaceStore(workspace, url=sys.argv[4])
    print("started", flush=True)
    target = store if store is not None else workspace
    with n4s.run(
        pipelines, dataset, target, name="live run", cv=3, verbose=0, commit_every=0
    ) as result:
        print("done", result.run_id, flush=True)
    if store is not None:
        store.close()


if __name__ == "__main__":
    main()
