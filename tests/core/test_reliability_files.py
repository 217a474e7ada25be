"""Issue 15, items 4, 5 and 13: maintenance stays inside the artifacts folder of its own
database, and never wipes a workspace whose database went missing."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from nirs4all_store import WorkspaceStore
from nirs4all_store.errors import ArtifactIntegrityError, StoreError
from nirs4all_store.models import Artifact


def _age(path: Path, seconds: float = 7200) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old), follow_symlinks=False)


def _set_path(store: WorkspaceStore, artifact_id: str, relpath: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE artifacts SET artifact_path = :p WHERE artifact_id = :a"),
            {"p": relpath, "a": artifact_id},
        )


# -- item 4: never outside artifacts/ ------------------------------------------------------------
def test_verify_repair_never_follows_a_symlinked_shard(
    store: WorkspaceStore, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / ("ee" * 32 + ".pkl")
    victim.write_bytes(b"precious")
    stale_tmp = elsewhere / ".tmp-0123456789abcdef"
    stale_tmp.write_bytes(b"also precious")
    _age(victim)
    _age(stale_tmp)
    (store.artifacts_path / "ee").symlink_to(elsewhere, target_is_directory=True)
    store.save_artifact({"kept": 1})

    report = store.verify(repair=True, grace_seconds=0)
    assert victim.read_bytes() == b"precious"
    assert stale_tmp.exists()
    assert report.removed_orphans == []
    assert not any(o.startswith("ee/") for o in report.orphan_files)


@pytest.mark.parametrize("relpath", ["../../x", "/tmp/abs-x", "ab/../../../x"])
def test_gc_never_deletes_a_row_path_outside_artifacts(
    store: WorkspaceStore, tmp_path: Path, relpath: str
) -> None:
    outside = (store.artifacts_path / relpath).resolve() if not relpath.startswith("/") else None
    if outside is None:
        outside = tmp_path / "abs-x"
        relpath = str(outside)
    outside.write_bytes(b"not an artifact")
    aid = store.save_artifact({"victim": relpath})
    _set_path(store, aid, relpath)

    with pytest.raises(ArtifactIntegrityError, match="artifacts folder"):
        store.load_artifact(aid)
    report = store.verify()
    assert report.unsafe_paths == [(aid, relpath)]
    assert not report.ok
    assert store.gc_artifacts(grace_seconds=0) == 1  # the row goes ...
    assert outside.read_bytes() == b"not an artifact"  # ... the file outside stays


def test_delete_run_never_deletes_a_row_path_outside_artifacts(
    store: WorkspaceStore, tmp_path: Path
) -> None:
    outside = tmp_path / "x"
    outside.write_bytes(b"keep me")
    run_id = store.begin_run("r")
    aid = store.save_artifact({"victim": 1})
    store.save_chain(
        store.begin_pipeline(run_id, "p", dataset_name="d"),
        [{}],
        0,
        "M",
        shared_artifacts={"a": aid},
    )
    _set_path(store, aid, os.path.relpath(outside, store.artifacts_path))
    # The grace period of a save: delete_run keeps freshly saved bytes; make them old.
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    with store.engine.begin() as conn:
        conn.execute(sa.update(Artifact.__table__).values(saved_at=old, created_at=old))
    store.delete_run(run_id)
    assert store.get_artifact(aid) is None
    assert outside.read_bytes() == b"keep me"


# -- item 5: a missing or empty database beside artifact files ------------------------------
@pytest.mark.parametrize("kind", ["duckdb-deleted", "sqlite-deleted", "sqlite-truncated"])
def test_no_new_database_beside_artifact_files(tmp_path: Path, kind: str) -> None:
    workspace = tmp_path / "ws"
    db_file = workspace / ("store.duckdb" if kind.startswith("duckdb") else "store.sqlite")
    url = None if kind.startswith("duckdb") else f"sqlite:///{db_file}"
    with WorkspaceStore(workspace, url=url) as store:
        for i in range(3):
            store.save_artifact({"i": i})
    files = sorted(p for p in (workspace / "artifacts").rglob("*.joblib"))
    assert len(files) == 3
    for leftover in workspace.glob(db_file.name + "*"):
        leftover.unlink()
    if kind.endswith("truncated"):
        db_file.write_bytes(b"")
    with pytest.raises(StoreError, match="refusing to create a new database") as info:
        WorkspaceStore(workspace, url=url)
    assert "move" in str(info.value) and str(workspace / "artifacts") in str(info.value)
    assert sorted(p for p in (workspace / "artifacts").rglob("*.joblib")) == files
    if kind.endswith("deleted"):
        assert not db_file.exists()


def test_repair_never_deletes_every_file_without_force(store: WorkspaceStore) -> None:
    for i in range(3):
        store.save_artifact({"i": i})
    files = [store.artifacts_path / f for f in store.vault.files.iter_files()]
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM artifacts"))
    for f in files:
        _age(f)
    with pytest.raises(StoreError, match="force=True"):
        store.verify(repair=True, grace_seconds=0)
    assert all(f.exists() for f in files)
    report = store.verify(repair=True, grace_seconds=0, force=True)
    assert len(report.removed_orphans) == 3
    assert not any(f.exists() for f in files)


# -- item 13: one database per artifacts folder ---------------------------------------------
def test_a_second_database_is_refused_on_a_shared_artifacts_dir(tmp_path: Path) -> None:
    shared = tmp_path / "shared-artifacts"
    other_db = f"sqlite:///{tmp_path / 'other.sqlite'}"
    WorkspaceStore(tmp_path / "o", url=other_db).close()  # an existing database of its own
    with WorkspaceStore(tmp_path / "a", artifacts_dir=shared) as first:
        first.save_artifact({"a": 1})
    with pytest.raises(StoreError, match="belongs to the database"):
        WorkspaceStore(tmp_path / "o", url=other_db, artifacts_dir=shared)
    with pytest.raises(StoreError, match="belongs to the database"):
        WorkspaceStore(
            tmp_path / "b", url=f"sqlite:///{tmp_path / 'b.sqlite'}", artifacts_dir=shared
        )
    with pytest.raises(StoreError, match="belongs to the database"):
        WorkspaceStore(tmp_path / "c", artifacts_dir=shared)
    assert not (tmp_path / "c" / "store.duckdb").exists()  # refused before creating it
    with WorkspaceStore(tmp_path / "a", artifacts_dir=shared) as again:  # the owner reopens
        assert again.list_artifacts().num_rows == 1


def test_a_workspace_folder_can_move(tmp_path: Path) -> None:
    with WorkspaceStore(tmp_path / "ws") as store:
        aid = store.save_artifact({"m": 1})
    (tmp_path / "ws").rename(tmp_path / "moved")
    with WorkspaceStore(tmp_path / "moved") as store:
        assert store.load_artifact(aid) == {"m": 1}


def test_an_owner_record_under_its_old_name_is_read_then_renamed(tmp_path: Path) -> None:
    """Workspaces of earlier versions hold `artifacts/.owner`: still honoured, then renamed
    `_owner` (nirs4all's own checks take any `*.*` file for a misplaced artifact)."""
    with WorkspaceStore(tmp_path / "a") as store:
        store.begin_run("owner")
    artifacts = tmp_path / "a" / "artifacts"
    (artifacts / "_owner").rename(artifacts / ".owner")
    with pytest.raises(StoreError, match="belongs to the database"):
        WorkspaceStore(tmp_path / "b", artifacts_dir=artifacts)
    with WorkspaceStore(tmp_path / "a") as again:
        assert again.count_runs() == 1
    assert (artifacts / "_owner").is_file() and not (artifacts / ".owner").exists()
    assert not [p for p in artifacts.rglob("*.*") if p.parent == artifacts]
