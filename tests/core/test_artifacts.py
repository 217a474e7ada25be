"""Artifacts: content-addressed files, atomic writes, verified loads, reference counts,
cascading deletes and garbage collection, on every backend (real files, real sklearn)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression
from sklearn.preprocessing import StandardScaler

from nirs4all_store import ArtifactIntegrityError, WorkspaceStore, durable
from nirs4all_store.artifacts import files

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def fitted_pls(seed: int = 0) -> PLSRegression:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(30, 8))
    y = X @ rng.normal(size=8)
    return PLSRegression(n_components=2).fit(X, y)


def pipeline(store: WorkspaceStore, run_id: str | None = None) -> tuple[str, str]:
    run_id = run_id or store.begin_run("run")
    return run_id, store.begin_pipeline(run_id, "pipe", dataset_name="ds")


def chain(store: WorkspaceStore, pipeline_id: str, fold: Any = None, shared: Any = None) -> str:
    return store.save_chain(
        pipeline_id,
        [{"step": 0}],
        0,
        "PLSRegression",
        fold_artifacts=fold,
        shared_artifacts=shared,
    )


def ref_count(store: WorkspaceStore, artifact_id: str) -> int:
    row = store.get_artifact(artifact_id)
    assert row is not None, artifact_id
    return int(row["ref_count"])


def add_prediction(store: WorkspaceStore, pipeline_id: str, chain_id: str | None, fold: str) -> str:
    y = np.linspace(0, 1, 20)
    return store.save_predictions(
        [
            {
                "pipeline_id": pipeline_id,
                "chain_id": chain_id,
                "dataset_name": "ds",
                "model_name": "pls",
                "model_class": "PLSRegression",
                "fold_id": fold,
                "partition": "val",
                "val_score": 0.1,
                "metric": "rmse",
                "task_type": "regression",
                "y_true": y,
                "y_pred": y + 0.01,
            }
        ]
    )[0]


def all_files(store: WorkspaceStore) -> list[Path]:
    return sorted(
        p
        for p in store.artifacts_path.rglob("*")
        if p.is_file() and p.parent != store.artifacts_path and not p.name.startswith(".")
    )


# -- content addressing --------------------------------------------------------------------
def test_layout_is_content_addressed(store: WorkspaceStore) -> None:
    model = fitted_pls()
    artifact_id = store.save_artifact(model, "PLSRegression", "model")
    row = store.get_artifact(artifact_id)
    assert row is not None
    data = files.serialize(model, "joblib")
    digest = files.sha256_bytes(data)
    assert row["content_hash"] == digest and HEX64.match(digest)
    path = store.get_artifact_path(artifact_id)
    assert path == store.artifacts_path / digest[:2] / f"{digest}.joblib"
    assert path.is_absolute() and path.read_bytes() == data
    assert row["size_bytes"] == len(data) and row["ref_count"] == 0
    assert row["format"] == "joblib" and row["operator_class"] == "PLSRegression"
    loaded = store.load_artifact(artifact_id)
    X = np.random.default_rng(1).normal(size=(5, 8))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_identical_bytes_share_one_id_and_file(store: WorkspaceStore) -> None:
    a = store.save_artifact(np.arange(50.0))
    b = store.save_artifact(np.arange(50.0), "other", "other")
    c = store.save_artifact(np.arange(51.0))
    assert a == b != c
    assert len(all_files(store)) == 2
    assert store.list_artifacts().num_rows == 2


def test_separately_fitted_identical_models_deduplicate(store: WorkspaceStore) -> None:
    first, second = fitted_pls(seed=3), fitted_pls(seed=3)
    assert first is not second
    ids = {store.save_artifact(first), store.save_artifact(second)}
    scalers = {
        store.save_artifact(StandardScaler().fit(np.eye(4) * k), "StandardScaler") for k in (2, 2)
    }
    assert len(ids) == 1 and len(scalers) == 1
    assert len(all_files(store)) == 2


def test_pickle_format_and_extension(store: WorkspaceStore) -> None:
    obj = {"weights": [1.5, 2.5], "name": "x"}
    pid = store.save_artifact(obj, format="pickle")
    jid = store.save_artifact(obj, format="joblib")
    assert pid != jid
    assert store.get_artifact_path(pid).suffix == ".pkl"
    assert store.get_artifact_path(jid).suffix == ".joblib"
    assert store.load_artifact(pid) == obj == store.load_artifact(jid)


def test_unsupported_format_lists_supported(store: WorkspaceStore) -> None:
    with pytest.raises(ValueError, match=r"'onnx'.*\['joblib', 'pickle'\]"):
        store.save_artifact(np.arange(3), format="onnx")
    assert all_files(store) == []
    assert store.list_artifacts().num_rows == 0


def test_load_unknown_id_is_key_error(store: WorkspaceStore) -> None:
    with pytest.raises(KeyError, match="no-such-artifact"):
        store.load_artifact("no-such-artifact")
    with pytest.raises(KeyError):
        store.get_artifact_path("no-such-artifact")


def test_missing_file_names_the_path_and_verify_reports_it(store: WorkspaceStore) -> None:
    artifact_id = store.save_artifact(np.arange(10.0))
    path = store.get_artifact_path(artifact_id)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        store.load_artifact(artifact_id)
    report = store.verify()
    assert report.missing_files == [(artifact_id, str(path))]
    assert not report.ok


def test_flipped_byte_is_integrity_error_and_verify_reports_it(store: WorkspaceStore) -> None:
    artifact_id = store.save_artifact(fitted_pls())
    path = store.get_artifact_path(artifact_id)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError) as caught:
        store.load_artifact(artifact_id)
    assert caught.value.artifact_id == artifact_id and caught.value.path == str(path)
    report = store.verify()
    assert report.corrupted_files == [(artifact_id, str(path))]
    assert report.missing_files == [] and not report.ok
    # Saving the same object again rewrites the good bytes (same size: a size check misses it).
    assert store.save_artifact(fitted_pls()) == artifact_id
    assert store.load_artifact(artifact_id) is not None
    assert store.verify().ok


def test_path_is_stable_across_reopen(open_store: Callable[..., WorkspaceStore]) -> None:
    store = open_store()
    artifact_id = store.save_artifact(fitted_pls())
    path = store.get_artifact_path(artifact_id)
    store.close()
    again = open_store()
    assert again.get_artifact_path(artifact_id) == path
    assert again.save_artifact(fitted_pls()) == artifact_id
    assert again.load_artifact(artifact_id).n_components == 2


# -- atomic writes -------------------------------------------------------------------------
def test_failed_replace_leaves_no_file_and_no_row(
    store: WorkspaceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(durable.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.save_artifact(np.arange(1000.0))
    monkeypatch.undo()
    assert all_files(store) == []  # neither the final name nor a temporary file
    assert store.list_artifacts().num_rows == 0


class Unpicklable:
    def __reduce__(self) -> Any:
        raise RuntimeError("cannot serialise this")


def test_failing_serialisation_writes_nothing(store: WorkspaceStore) -> None:
    for fmt in ("joblib", "pickle"):
        with pytest.raises(RuntimeError, match="cannot serialise"):
            store.save_artifact({"ok": 1, "bad": Unpicklable()}, format=fmt)
    assert all_files(store) == []
    assert store.list_artifacts().num_rows == 0


def test_atomic_write_failure_midway_cleans_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ab" / "final.bin"
    target.parent.mkdir()

    def broken_fsync(fd: int) -> None:
        raise OSError("I/O error (simulated)")

    monkeypatch.setattr(durable.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="I/O error"):
        durable.atomic_write(target, b"x" * 10_000)
    assert list(target.parent.iterdir()) == []


def test_rolled_back_save_leaves_an_orphan_that_repair_removes(store: WorkspaceStore) -> None:
    with pytest.raises(RuntimeError, match="abort"), store.transaction():
        store.save_artifact(np.arange(66.0))  # queued: its file is written by the flush
        raise RuntimeError("abort")
    assert store.list_artifacts().num_rows == 0 and all_files(store) == []
    with pytest.raises(RuntimeError, match="abort"), store.transaction():
        artifact_id = store.save_artifact(np.arange(77.0))
        assert store.get_artifact_path(artifact_id).is_file()  # the read flushed it
        raise RuntimeError("abort")
    assert store.list_artifacts().num_rows == 0
    (orphan,) = all_files(store)
    report = store.verify()
    assert report.orphan_files == [orphan.relative_to(store.artifacts_path).as_posix()]
    assert store.verify(repair=True).removed_orphans == []  # younger than the grace period
    assert orphan.exists()
    repaired = store.verify(repair=True, grace_seconds=0)
    assert repaired.removed_orphans == report.orphan_files and repaired.ok
    assert all_files(store) == [] and store.verify().ok


def test_stale_temporary_files_are_ignored_then_removed(store: WorkspaceStore) -> None:
    artifact_id = store.save_artifact(np.arange(5.0))
    shard = store.get_artifact_path(artifact_id).parent
    tmp = shard / f"{durable.TEMP_PREFIX}crashed"
    tmp.write_bytes(b"half a file")
    assert store.verify().ok
    store.verify(repair=True, grace_seconds=0)
    assert not tmp.exists()
    assert store.load_artifact(artifact_id).shape == (5,)


# -- reference counts ----------------------------------------------------------------------
def test_save_chain_counts_each_distinct_artifact_once(store: WorkspaceStore) -> None:
    a = store.save_artifact(np.arange(1.0))
    b = store.save_artifact(np.arange(2.0))
    c = store.save_artifact(np.arange(3.0))
    assert [ref_count(store, x) for x in (a, b, c)] == [0, 0, 0]
    _, pipe = pipeline(store)
    chain(store, pipe, fold={"0": a, "1": [a, b, a]}, shared={"scaler": a, "pca": [c]})
    assert [ref_count(store, x) for x in (a, b, c)] == [1, 1, 1]
    chain(store, pipe, fold={"0": [b]})
    assert [ref_count(store, x) for x in (a, b, c)] == [1, 2, 1]
    chain(store, pipe)  # no artifacts at all
    assert store.verify().ok


def test_save_chain_with_unknown_artifact_stores_nothing(store: WorkspaceStore) -> None:
    a = store.save_artifact(np.arange(4.0))
    _, pipe = pipeline(store)
    with pytest.raises(KeyError, match="not-an-artifact"):
        chain(store, pipe, fold={"0": [a, "not-an-artifact"]})
    assert store.get_chains_for_pipeline(pipe).num_rows == 0
    assert ref_count(store, a) == 0
    with pytest.raises(KeyError):
        chain(store, "unknown-pipeline", fold={"0": a})
    assert ref_count(store, a) == 0 and store.verify().ok


def test_fail_pipeline_releases_and_keeps_failed_row(store: WorkspaceStore) -> None:
    a = store.save_artifact(fitted_pls())
    b = store.save_artifact(np.arange(9.0))
    run_id, pipe = pipeline(store)
    _, other = pipeline(store, run_id)
    c1 = chain(store, pipe, fold={"0": a}, shared={"x": b})
    c2 = chain(store, other, fold={"0": a})
    p1 = add_prediction(store, pipe, c1, "0")
    p2 = add_prediction(store, other, c2, "0")
    store.log_step(pipe, 0, "PLSRegression", "fit")
    store.log_step(other, 0, "PLSRegression", "fit")
    assert ref_count(store, a) == 2

    store.fail_pipeline(pipe, "out of memory")
    row = store.get_pipeline(pipe)
    assert row is not None and row["status"] == "failed" and row["error"] == "out of memory"
    assert store.get_chain(c1) is None and store.get_chains_for_pipeline(pipe).num_rows == 0
    assert store.get_prediction(p1) is None
    assert store.get_pipeline_log(pipe).num_rows == 0
    assert ref_count(store, a) == 1 and ref_count(store, b) == 0
    # The other pipeline is untouched, arrays included.
    kept = store.get_prediction(p2, load_arrays=True)
    assert kept is not None and kept["y_true"] is not None
    assert store.get_pipeline_log(other).num_rows == 1
    assert store.load_artifact(a) is not None and store.verify().ok
    with pytest.raises(KeyError):
        store.fail_pipeline("no-such-pipeline", "x")


@pytest.mark.parametrize("delete_artifacts", [True, False])
def test_delete_run_cascades_and_counts_rows(store: WorkspaceStore, delete_artifacts: bool) -> None:
    shared = store.save_artifact(fitted_pls(1))
    own = store.save_artifact(fitted_pls(2))
    run_a, pipe_a = pipeline(store)
    _, pipe_a2 = pipeline(store, run_a)
    _, pipe_b = pipeline(store)
    ca = chain(store, pipe_a, fold={"0": [own, shared]})
    ca2 = chain(store, pipe_a2, shared={"m": own})
    cb = chain(store, pipe_b, fold={"0": shared})
    for fold in ("0", "1"):
        add_prediction(store, pipe_a, ca, fold)
    add_prediction(store, pipe_a2, ca2, "0")
    pb = add_prediction(store, pipe_b, cb, "0")
    store.log_step(pipe_a, 0, None, "fit")
    store.log_step(pipe_b, 0, None, "fit")
    own_path, shared_path = store.get_artifact_path(own), store.get_artifact_path(shared)

    deleted = store.delete_run(run_a, delete_artifacts=delete_artifacts)
    # 1 run + 2 pipelines + 2 chains + 3 predictions + 3 arrays rows + 1 log (+ 1 artifact)
    assert deleted == 12 + (1 if delete_artifacts else 0)
    assert store.get_run(run_a) is None and store.get_pipeline(pipe_a) is None
    assert store.get_chain(ca) is None and store.get_chain(ca2) is None
    assert store.query_predictions(run_id=run_a).num_rows == 0
    assert ref_count(store, shared) == 1 and shared_path.exists()
    assert store.load_artifact(shared) is not None
    if delete_artifacts:
        assert store.get_artifact(own) is None and not own_path.exists()
    else:
        assert ref_count(store, own) == 0 and own_path.exists()
        # Released artifacts are not protected by the grace period: gc takes them now.
        assert store.gc_artifacts() == 1 and not own_path.exists()
    assert store.get_prediction(pb, load_arrays=True)["y_pred"] is not None  # type: ignore[index]
    assert store.verify().ok
    with pytest.raises(KeyError):
        store.delete_run(run_a)


def test_delete_run_keeps_artifacts_of_another_run(store: WorkspaceStore) -> None:
    artifact = store.save_artifact(fitted_pls())
    run_a, pipe_a = pipeline(store)
    run_b, pipe_b = pipeline(store)
    chain(store, pipe_a, fold={"0": artifact})
    cb = chain(store, pipe_b, fold={"0": artifact})
    store.delete_run(run_a, delete_artifacts=True)
    assert ref_count(store, artifact) == 1
    assert store.get_artifact_path(artifact).exists()
    assert store.gc_artifacts(grace_seconds=0) == 0
    store.delete_run(run_b, delete_artifacts=True)
    assert store.get_artifact(artifact) is None and cb is not None
    assert all_files(store) == [] and store.verify().ok


def test_delete_prediction_includes_arrays(store: WorkspaceStore) -> None:
    _, pipe = pipeline(store)
    pred = add_prediction(store, pipe, None, "0")
    other = add_prediction(store, pipe, None, "1")
    assert store.delete_prediction(pred) is True
    assert store.get_prediction(pred) is None
    assert store.delete_prediction(pred) is False
    assert store.get_prediction(other, load_arrays=True)["y_true"] is not None  # type: ignore[index]
    with store.transaction() as session:  # the arrays row went with the prediction
        import sqlalchemy as sa

        from nirs4all_store.models import PredictionArrays

        table = PredictionArrays.__table__
        ids = session.execute(sa.select(table.c.prediction_id)).scalars().all()
    assert ids == [other]


# -- garbage collection --------------------------------------------------------------------
def test_gc_grace_spares_fresh_never_referenced(store: WorkspaceStore) -> None:
    fresh = store.save_artifact(np.arange(11.0))
    assert store.gc_artifacts(grace_seconds=3600) == 0
    assert store.gc_artifacts() == 0
    assert store.load_artifact(fresh).shape == (11,)
    would = store.gc_artifacts(grace_seconds=0, dry_run=True)
    assert isinstance(would, list) and [w["artifact_id"] for w in would] == [fresh]
    assert store.get_artifact(fresh) is not None and store.get_artifact_path(fresh).exists()
    path = store.get_artifact_path(fresh)
    assert store.gc_artifacts(grace_seconds=0) == 1
    assert store.get_artifact(fresh) is None and not path.exists()
    assert store.gc_artifacts(grace_seconds=0) == 0  # twice is harmless
    with pytest.raises(ValueError, match="grace_seconds"):
        store.gc_artifacts(grace_seconds=-1)


def test_gc_keeps_referenced_and_takes_released(store: WorkspaceStore) -> None:
    used = store.save_artifact(np.arange(12.0))
    released = store.save_artifact(np.arange(13.0))
    _, pipe = pipeline(store)
    chain(store, pipe, fold={"0": used})
    _, doomed = pipeline(store)
    chain(store, doomed, fold={"0": released})
    store.fail_pipeline(doomed, "x")
    assert [w["artifact_id"] for w in store.gc_artifacts(dry_run=True)] == [released]  # type: ignore[union-attr]
    assert store.gc_artifacts(grace_seconds=3600) == 1
    assert store.get_artifact(released) is None and store.load_artifact(used).shape == (12,)
    assert store.verify().ok


def test_resave_of_released_artifact_is_protected_again(store: WorkspaceStore) -> None:
    artifact = store.save_artifact(np.arange(14.0))
    _, pipe = pipeline(store)
    chain(store, pipe, fold={"0": artifact})
    store.fail_pipeline(pipe, "x")
    assert store.save_artifact(np.arange(14.0)) == artifact  # in flight again
    assert store.gc_artifacts(grace_seconds=3600) == 0
    assert store.load_artifact(artifact).shape == (14,)


def test_gc_with_file_already_missing(store: WorkspaceStore) -> None:
    artifact = store.save_artifact(np.arange(15.0))
    store.get_artifact_path(artifact).unlink()
    assert store.gc_artifacts(grace_seconds=0) == 1
    assert store.get_artifact(artifact) is None and store.verify().ok


def test_gc_deletes_rows_before_files(
    store: WorkspaceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between the two steps must leave an orphan file, never a row without file."""
    artifact = store.save_artifact(np.arange(16.0))
    path = store.get_artifact_path(artifact)

    def crash(self: Any, relpath: str) -> bool:
        raise KeyboardInterrupt("killed while unlinking")

    monkeypatch.setattr(files.ArtifactFiles, "delete", crash)
    with pytest.raises(KeyboardInterrupt):
        store.gc_artifacts(grace_seconds=0)
    monkeypatch.undo()
    assert store.get_artifact(artifact) is None and path.exists()
    report = store.verify()
    assert report.missing_files == [] and len(report.orphan_files) == 1
    assert store.verify(repair=True, grace_seconds=0).ok and not path.exists()


def test_verify_repairs_reference_counts(store: WorkspaceStore) -> None:
    import sqlalchemy as sa

    from nirs4all_store.models import Artifact

    a = store.save_artifact(np.arange(17.0))
    b = store.save_artifact(np.arange(18.0))
    _, pipe = pipeline(store)
    chain(store, pipe, fold={"0": [a, b]})
    chain(store, pipe, shared={"s": a})
    table = Artifact.__table__
    with store.transaction() as session:
        session.execute(sa.update(table).where(table.c.artifact_id == a).values(ref_count=7))
        session.execute(sa.update(table).where(table.c.artifact_id == b).values(ref_count=0))
    report = store.verify()
    assert sorted(report.ref_count_mismatches) == sorted([(a, 7, 2), (b, 0, 1)])
    fixed = store.verify(repair=True)
    assert fixed.repaired_ref_counts == 2
    assert (ref_count(store, a), ref_count(store, b)) == (2, 1)
    assert store.verify().ok


def test_verify_reports_chains_naming_unknown_artifacts(store: WorkspaceStore) -> None:
    a = store.save_artifact(np.arange(19.0))
    _, pipe = pipeline(store)
    chain_id = chain(store, pipe, fold={"0": a})
    import sqlalchemy as sa

    from nirs4all_store.models import Artifact

    with store.transaction() as session:  # simulate a row lost outside the store
        session.execute(sa.delete(Artifact.__table__))
    report = store.verify()
    assert report.unknown_artifact_refs == [(chain_id, a)]
    assert len(report.orphan_files) == 1 and not report.ok


def test_many_artifacts_round_trip_after_reopen(open_store: Callable[..., WorkspaceStore]) -> None:
    store = open_store()
    _, pipe = pipeline(store)
    ids = [store.save_artifact(fitted_pls(seed)) for seed in range(5)]
    chain_id = chain(store, pipe, fold={str(i): x for i, x in enumerate(ids)})
    store.close()
    again = open_store()
    row = again.get_chain(chain_id)
    assert row is not None
    for i, artifact_id in enumerate(ids):
        assert row["fold_artifacts"][str(i)] == artifact_id
        assert isinstance(again.load_artifact(artifact_id), PLSRegression)
        assert ref_count(again, artifact_id) == 1
    assert again.verify().ok
    assert os.path.commonpath([again.get_artifact_path(ids[0]), again.artifacts_path]) == str(
        again.artifacts_path
    )


# -- deletes inside an explicit transaction ------------------------------------------------
@pytest.mark.parametrize("operation", ["delete_run", "gc_artifacts"])
def test_rolled_back_delete_keeps_files(store: WorkspaceStore, operation: str) -> None:
    """Regression: files were unlinked before the outer transaction committed."""
    artifact = store.save_artifact(fitted_pls())
    run_id, pipe = pipeline(store)
    chain(store, pipe, fold={"0": artifact})
    if operation == "gc_artifacts":
        store.fail_pipeline(pipe, "released")
    path = store.get_artifact_path(artifact)

    def delete() -> None:
        if operation == "delete_run":
            store.delete_run(run_id, delete_artifacts=True)
        else:
            assert store.gc_artifacts(grace_seconds=0) == 1

    with pytest.raises(RuntimeError, match="changed my mind"), store.transaction():
        delete()
        assert path.exists()  # not before the commit
        raise RuntimeError("changed my mind")
    assert store.get_artifact(artifact) is not None and path.exists()
    assert store.load_artifact(artifact) is not None and store.verify().ok
    with store.transaction():
        delete()
        assert path.exists()
    assert store.get_artifact(artifact) is None and not path.exists()
    assert store.verify().ok


def test_delete_then_resave_in_one_transaction_keeps_the_file(store: WorkspaceStore) -> None:
    artifact = store.save_artifact(np.arange(20.0))
    run_id, pipe = pipeline(store)
    chain(store, pipe, fold={"0": artifact})
    with store.transaction():
        store.delete_run(run_id, delete_artifacts=True)
        assert store.save_artifact(np.arange(20.0)) == artifact
    assert store.load_artifact(artifact).shape == (20,)
    assert store.verify().ok


def test_resave_of_a_referenced_artifact_survives_delete_run(store: WorkspaceStore) -> None:
    """Bytes saved again (by another process, say) after their last reference are in flight:
    delete_run releasing that reference keeps them for the grace period, gc(0) collects them."""
    from helpers import record_pipeline, spectra

    rec = record_pipeline(store, with_predictions=False)
    shared = rec.artifact_ids[0]
    X, _ = spectra(seed=0)
    assert store.save_artifact(StandardScaler().fit(X), "StandardScaler", "transformer") == shared
    store.delete_run(rec.run_id, delete_artifacts=True)
    assert store.get_artifact(shared) is not None and store.get_artifact_path(shared).is_file()
    assert all(store.get_artifact(a) is None for a in rec.artifact_ids[1:])
    assert store.gc_artifacts() == 0
    assert store.gc_artifacts(grace_seconds=0) == 1
    assert store.get_artifact(shared) is None and store.verify().ok


def test_written_files_follow_the_umask(store: WorkspaceStore, tmp_path: Path) -> None:
    """Artifacts and exports are readable by the other users of a shared workspace."""
    old = os.umask(0o022)
    try:
        path = store.get_artifact_path(store.save_artifact(np.arange(9.0)))
        target = tmp_path / "out" / "x.bin"
        durable.atomic_write(target, b"data")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert target.stat().st_mode & 0o777 == 0o644
