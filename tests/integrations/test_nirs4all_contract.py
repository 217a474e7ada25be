"""The nirs4all 0.8 contract of `Nirs4allWorkspaceStore`, call by call, on every backend.

Each test replays what nirs4all was traced doing (docs/nirs4all.md) without nirs4all
itself (only polars is needed): the order of chains and artifact registrations, its ids,
its upserts, its JSON, its raw SQL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("polars", reason="polars is not installed (nirs4all's frames are polars)")

from nirs4all_store.errors import StoreError
from nirs4all_store.integrations.nirs4all_store import Nirs4allWorkspaceStore


@pytest.fixture
def n4a(workspace: Path, database_url: str | None) -> Iterator[Nirs4allWorkspaceStore]:
    store = Nirs4allWorkspaceStore(workspace, url=database_url)
    yield store
    store.close()


class _Splitter:
    """Stands for nirs4all's live `_FullTrainFoldSplitter` in the refit config."""


def write_artifact(store: Nirs4allWorkspaceStore, name: str, payload: bytes) -> dict[str, Any]:
    """A file written the way nirs4all's ArtifactRegistry does, and its registration call."""
    digest = hashlib.sha256(payload).hexdigest()
    relpath = f"{digest[:2]}/{name}_{digest[:12]}.joblib"
    target = store.workspace_path / "artifacts" / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload)
    return {
        "path": relpath,
        "content_hash": f"sha256:{digest}",
        "format": "joblib",
        "size_bytes": len(payload),
    }


def begin(store: Nirs4allWorkspaceStore) -> tuple[str, str]:
    run_id = store.begin_run("trace_pls_p0", {"n_pipelines": 1}, [{"name": "ds"}])
    pipeline_id = store.begin_pipeline(
        run_id,
        "trace_pls_p0_d9ac0653",
        ["sklearn.preprocessing._data.MinMaxScaler", _Splitter()],
        [{"_or_": {"class": "PLSRegression"}}],
        "ds",
        "ab" * 32,
    )
    return run_id, pipeline_id


def chain_then_register(store: Nirs4allWorkspaceStore, pipeline_id: str) -> list[str]:
    """save_chain naming two ids, then their registration (nirs4all's order)."""
    ids = ["trace_pls_p0_d9ac0653$7c1fa10edc2c:all", "trace_pls_p0_d9ac0653$2d4cd0b32aa0:0"]
    store.save_chain(
        pipeline_id=pipeline_id,
        steps=[
            {"step_idx": 1, "operator_class": "MinMaxScaler", "artifact_ids": [ids[0]]},
            {"step_idx": 2, "operator_class": "PLSRegression", "artifact_ids": [ids[1]]},
        ],
        model_step_idx=2,
        model_class="PLSRegression",
        preprocessings="MinMax",
        fold_strategy="per_fold",
        fold_artifacts={"fold_0": ids[1]},
        shared_artifacts={"1": [ids[0]]},
        branch_path=None,
        source_index=None,
    )
    assert store.get_chains_for_pipeline(pipeline_id).height == 0  # held: nothing registered
    for artifact_id, (name, payload) in zip(
        ids,
        [("transformer_MinMaxScaler", b"scaler"), ("model_PLSRegression", b"model")],
        strict=True,
    ):
        files = write_artifact(store, name, payload)
        store.register_existing_artifact(
            artifact_id,
            operator_class=name.split("_")[1],
            artifact_type=name.split("_")[0],
            **files,
        )
    return ids


def test_chain_saved_before_its_artifacts_gets_exact_counts(n4a: Nirs4allWorkspaceStore) -> None:
    _, pipeline_id = begin(n4a)
    ids = chain_then_register(n4a, pipeline_id)
    chains = n4a.get_chains_for_pipeline(pipeline_id)
    assert chains.height == 1 and n4a.pending_chains() == []
    counts = {a["artifact_id"]: a["ref_count"] for a in n4a.list_artifacts().to_pylist()}
    assert counts == dict.fromkeys(ids, 1)
    again = write_artifact(n4a, "transformer_MinMaxScaler", b"scaler")  # a rerun, same file
    n4a.register_existing_artifact(
        ids[0], **again, operator_class="MinMaxScaler", artifact_type="transformer"
    )  # idempotent on the id
    report = n4a.verify()
    assert report.ok, report.problems()  # registered files are not orphans, hashes match
    assert n4a.get_artifact_path(ids[0]).read_bytes() == b"scaler"
    # The other order: registered first, then a second chain naming it: counted at once.
    late = "trace_pls_p0_d9ac0653$aaaaaaaaaaaa:1"
    files = write_artifact(n4a, "model_PLSRegression", b"model fold 1")
    n4a.register_existing_artifact(
        late, **files, operator_class="PLSRegression", artifact_type="model"
    )
    n4a.save_chain(
        pipeline_id=pipeline_id, steps=[], model_step_idx=2, model_class="PLSRegression",
        preprocessings="MinMax", fold_strategy="per_fold", fold_artifacts={"fold_1": late},
        shared_artifacts={"1": [ids[0]]}, branch_path=None, source_index=None,
    )  # fmt: skip
    counts = {a["artifact_id"]: a["ref_count"] for a in n4a.list_artifacts().to_pylist()}
    assert counts == {ids[0]: 2, ids[1]: 1, late: 1} and n4a.pending_chains() == []
    report = n4a.verify()
    assert report.ok, report.problems()


def test_predictions_take_nirs4all_ids_and_upsert(n4a: Nirs4allWorkspaceStore) -> None:
    _, pipeline_id = begin(n4a)
    chain_then_register(n4a, pipeline_id)
    chain_id = n4a.get_chains_for_pipeline(pipeline_id)["chain_id"][0]
    fields: dict[str, Any] = {
        "pipeline_id": pipeline_id,
        "chain_id": chain_id,
        "dataset_name": "ds",
        "model_name": "PLSRegression",
        "model_class": "PLSRegression",
        "fold_id": "0",
        "partition": "val",
        "val_score": 1.5,
        "test_score": 2.0,
        "train_score": 1.0,
        "metric": "rmse",
        "task_type": "regression",
        "n_samples": 3,
        "n_features": 4,
        "scores": {"val": {"rmse": 1.5}, "test": {}},
        "best_params": {},
        "branch_id": None,
        "branch_name": None,
        "exclusion_count": 0,
        "exclusion_rate": 0.0,
        "preprocessings": "MinMax",
        "prediction_id": "63c51ec4-afac-4e",
        "refit_context": None,
    }
    first = n4a.save_prediction(**fields)
    n4a.array_store.save_batch(
        [
            {
                "prediction_id": first,
                "y_true": np.ones((3, 1), "f4"),
                "y_pred": np.zeros((3, 1)),
                "sample_indices": np.arange(3),
                "weights": np.array([0.4, 0.6]),
            }
        ]
    )
    again = n4a.save_prediction(**{**fields, "val_score": 9.0, "prediction_id": "ffffffff-0000-4a"})
    assert again == first  # same natural key: updated in place, existing id returned
    rows = n4a.query_predictions().to_dicts()
    assert len(rows) == 1 and rows[0]["val_score"] == 9.0
    assert n4a.array_store.load_single(first) is None  # arrays replaced (none re-saved yet)
    assert n4a.get_prediction("63c51ec4-afac-4e") is not None  # nirs4all's own id finds it
    standalone = n4a.save_prediction(
        **{
            **fields,
            "chain_id": "",
            "fold_id": "final",
            "partition": "test",
            "refit_context": "standalone",
            "prediction_id": "0123456789abcdef",
        }
    )
    row = n4a.get_prediction(standalone)
    assert row is not None and row["chain_id"] is None and row["refit_context"] == "standalone"
    n4a.array_store.save_batch(
        [
            {
                "prediction_id": "0123456789abcdef",
                "y_pred": np.ones(2),
                "y_true": np.ones(2),
                "weights": np.array([1.0]),
            }
        ]
    )
    loaded = n4a.array_store.load_single("0123456789abcdef")
    assert loaded is not None and loaded["y_pred"].tolist() == [1.0, 1.0]
    assert loaded["weights"].tolist() == [1.0]
    assert n4a.array_store.stats()["total_rows"] == 1
    n4a.save_prediction(**{**fields, "fold_id": "1", "val_score": 3.0, "prediction_id": None})
    n4a.save_prediction(
        **{**fields, "fold_id": "avg_agg", "val_score": 99.0, "prediction_id": None}
    )
    refit = {"fold_id": "final", "partition": "test", "refit_context": "standalone"}
    n4a.save_prediction(**{**fields, **refit, "test_score": 4.0, "prediction_id": None})
    n4a.bulk_update_chain_summaries([chain_id])
    chain = n4a.get_chain(chain_id)
    assert chain is not None
    assert chain["cv_val_score"] == pytest.approx(6.0)  # folds 0 (9.0) and 1 (3.0); _agg out
    assert chain["cv_fold_count"] == 2
    assert chain["final_test_score"] == pytest.approx(4.0)  # the refit (standalone) test row


def test_json_logs_and_raw_sql(n4a: Nirs4allWorkspaceStore) -> None:
    run_id, pipeline_id = begin(n4a)
    config = n4a.get_pipeline(pipeline_id)["expanded_config"]  # type: ignore[index]
    assert config[0] == "sklearn.preprocessing._data.MinMaxScaler"
    assert config[1].startswith("<") and "_Splitter object at 0x" in config[1]
    n4a.log_step(pipeline_id, 2, "ShuffleSplit", "output", message="Output: folds.csv")
    log = n4a.get_pipeline_log(pipeline_id).to_dicts()
    assert log[0]["duration_ms"] is None
    frame = n4a._fetch_pl(
        "SELECT rowid AS _rowid, * FROM pipelines WHERE run_id = ? AND dataset_name = ? "
        "ORDER BY rowid ASC",
        [run_id, "ds"],
    )
    assert frame["pipeline_id"].to_list() == [pipeline_id]
    assert n4a._fetch_pl("SELECT COUNT(*) AS cnt FROM runs WHERE run_id = $1", [run_id])[
        "cnt"
    ].to_list() == [1]
    assert n4a._fetch_pl("SELECT 'a:b' AS t")["t"].to_list() == ["a:b"]  # colons kept
    with pytest.raises(ValueError, match="has no parameter"):
        n4a._fetch_pl("SELECT * FROM runs WHERE run_id = ?")
    assert n4a.list_runs(dataset="ds").height == 1
    assert n4a.list_runs(dataset="other").height == 0
    assert n4a.list_runs("completed", None, None, 10, 0).height == 0  # still running
    assert n4a.list_runs(project_id="p").height == 0  # no such project: no runs
    assert n4a.top_predictions(5, "val_score", True, "val", None, "regression").height == 0
    assert n4a.workspace_path.is_dir() and n4a.degraded is False
    assert n4a.cleanup_transient_artifacts(run_id, "ds", [pipeline_id]) == 0
    n4a.close()
    with pytest.raises(StoreError):
        n4a.list_runs()


def test_query_predictions_named_filters_and_like_patterns(n4a: Nirs4allWorkspaceStore) -> None:
    """nirs4all's `query_predictions(dataset_name, model_class, partition, fold_id, ...)`:
    by name or position, a `%` in a text filter making a LIKE pattern (its `"PLS%"`)."""
    run_id, pipeline_id = begin(n4a)
    chain_then_register(n4a, pipeline_id)
    chain_id = n4a.get_chains_for_pipeline(pipeline_id)["chain_id"][0]
    base: dict[str, Any] = {
        "pipeline_id": pipeline_id, "chain_id": chain_id, "dataset_name": "wheat",
        "model_name": "PLS", "model_class": "sklearn.PLSRegression", "fold_id": "0",
        "partition": "val", "val_score": 1.0, "test_score": 1.0, "train_score": 1.0,
        "metric": "rmse", "task_type": "regression", "n_samples": 3, "n_features": 4,
        "scores": {}, "best_params": {}, "branch_id": None, "branch_name": None,
        "exclusion_count": 0, "exclusion_rate": 0.0, "preprocessings": "",
        "prediction_id": None, "refit_context": None,
    }  # fmt: skip
    n4a.save_prediction(**base)
    n4a.save_prediction(**{**base, "fold_id": "1"})
    n4a.save_prediction(**{**base, "fold_id": "1", "partition": "test"})
    n4a.save_prediction(**{**base, "model_name": "Ridge", "model_class": "sklearn.Ridge"})
    assert n4a.query_predictions(model_class="sklearn.PLSRegression").height == 3
    assert n4a.query_predictions(model_class="sklearn.PLS%").height == 3
    assert n4a.query_predictions(model_class="%Ridge")["model_name"].to_list() == ["Ridge"]
    assert n4a.query_predictions(model_class="sklearn.%", partition="val").height == 3
    assert n4a.query_predictions("whe%", "sklearn.PLS%", "val").height == 2  # positional
    assert n4a.query_predictions(dataset_name="corn%").height == 0
    like = n4a.query_predictions(model_class="sklearn.PLS%", fold_id="1", run_id=run_id)
    assert sorted(like["partition"].to_list()) == ["test", "val"]
    assert n4a.query_predictions(model_class="%", limit=2, offset=1).height == 2  # paged
    assert n4a.query_predictions(fold_id="%", run_id="no-such-run").height == 0
    with pytest.raises(ValueError, match="limit"):
        n4a.query_predictions(model_class="%", limit=-1)
    with pytest.raises(TypeError, match="positional"):
        n4a.query_predictions(*range(11))


def test_the_other_reference_calls_through_the_adapter(
    n4a: Nirs4allWorkspaceStore, tmp_path: Path
) -> None:
    """The reference methods no nirs4all trace above calls, each called as nirs4all's
    signature has it (tests/fixtures/reference_workspace_store_api.json), on every backend."""
    run_id, pipeline_id = begin(n4a)
    chain_then_register(n4a, pipeline_id)
    chain_id = n4a.get_chains_for_pipeline(pipeline_id)["chain_id"][0]
    n4a.save_prediction(
        pipeline_id, chain_id, "ds", "PLS", "PLSRegression", "0", "val",
        val_score=1.5, test_score=2.5, metric="rmse", task_type="regression",
        prediction_id="0123456789abcdef",
    )  # fmt: skip
    other = n4a.save_prediction(
        pipeline_id, chain_id, "ds", "PLS", "PLSRegression", "1", "val",
        val_score=0.5, metric="rmse", task_type="regression", prediction_id="fedcba9876543210",
    )  # fmt: skip
    y = np.array([1.0, 2.0])
    n4a.array_store.save_batch(
        [{"prediction_id": i, "y_true": y, "y_pred": y} for i in ("0123456789abcdef", other)]
    )
    assert n4a.array_store.arrays_dir == n4a.workspace_path / "arrays"
    batch = n4a.array_store.load_batch(["0123456789abcdef", other, "not-stored-id"], "ds")
    assert set(batch) == {"0123456789abcdef", other}  # keyed by the ids as given
    assert batch["0123456789abcdef"]["y_pred"].tolist() == [1.0, 2.0]
    assert n4a.array_store.load_batch(["0123456789abcdef"], "other_dataset") == {}
    assert n4a.array_store.delete_batch({"fedcba9876543210"}, "ds") == 1
    assert n4a.array_store.load_single(other) is None and n4a.get_prediction(other) is not None
    arrays = n4a.get_prediction_arrays("0123456789abcdef")  # nirs4all's store before 0.8
    assert arrays is not None and arrays["y_true"].tolist() == [1.0, 2.0]
    assert set(arrays) == {"y_true", "y_pred", "y_proba", "weights", "sample_indices"}
    assert n4a.get_prediction_arrays(other) is None  # arrays deleted above
    assert n4a.get_prediction_arrays("no-such-id-0000") is None

    n4a.update_chain_summary(chain_id)
    chain = n4a.get_chain(chain_id)
    assert chain is not None and chain["cv_val_score"] == pytest.approx(1.0)
    assert chain["cv_fold_count"] == 2
    n4a.log_step(pipeline_id, 1, "MinMaxScaler", "fit", duration_ms=3)
    summary = n4a.get_run_log_summary(run_id)
    assert summary.height == 1 and summary["pipeline_id"].to_list() == [pipeline_id]

    n4a.complete_pipeline(pipeline_id, 1.5, 2.5, "rmse", 12)
    failed_run = n4a.begin_run("second", {}, ["ds"])
    failed = n4a.begin_pipeline(failed_run, "p2", [], [], "ds", "cd" * 32)
    n4a.fail_pipeline(failed, "ValueError: boom")
    n4a.fail_run(failed_run, "ValueError: boom")
    n4a.complete_run(run_id, {"best": 1.5})
    assert n4a.get_pipeline(pipeline_id)["status"] == "completed"  # type: ignore[index]
    assert n4a.get_pipeline(failed)["status"] == "failed"  # type: ignore[index]
    assert n4a.get_run(failed_run)["status"] == "failed"  # type: ignore[index]
    assert n4a.get_run(run_id)["status"] == "completed"  # type: ignore[index]

    config = n4a.export_pipeline_config(pipeline_id, tmp_path / "out" / "pipeline.json")
    assert config.is_file()
    assert n4a.export_run(run_id, tmp_path / "out" / "run.yaml").is_file()
    parquet = n4a.export_predictions_parquet(tmp_path / "out" / "p.parquet", partition="val")
    import pyarrow.parquet as pq

    assert pq.read_table(parquet).num_rows == 2
    with n4a.transaction():
        n4a.log_step(pipeline_id, 2, "PLSRegression", "fit")
    assert n4a.get_pipeline_log(pipeline_id).height == 2
    assert n4a.gc_artifacts() == 0  # both artifacts referenced by the chain
    n4a.vacuum()
    report = n4a.verify()
    assert report.ok, report.problems()
