"""The seed API of WorkspaceStore: runs, pipelines, chains, predictions, logs, transactions."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
from helpers import prediction_record, record_pipeline

from nirs4all_store import ConstraintError, StoreError, WorkspaceStore


def test_workspace_layout(store: WorkspaceStore, workspace, backend: str) -> None:
    assert (workspace / "artifacts").is_dir()
    assert (workspace / "store.duckdb").exists() == (backend == "duckdb")
    assert not (workspace / "exports").exists()


def test_run_lifecycle_and_json_and_utc(store: WorkspaceStore) -> None:
    config = {"cv": 5, "bad": math.nan, "nested": {"inf": math.inf, "list": [1.5, np.float64(2.5)]}}
    run_id = store.begin_run("sweep", config=config, datasets=[{"name": "wheat", "n": np.int64(3)}])
    run = store.get_run(run_id)
    assert run is not None and run["status"] == "running"
    assert run["config"] == {"cv": 5, "bad": None, "nested": {"inf": None, "list": [1.5, 2.5]}}
    assert run["datasets"] == [{"name": "wheat", "n": 3}]
    assert run["created_at"].tzinfo is not None and run["created_at"].utcoffset() == dt.timedelta(0)
    assert abs(run["created_at"] - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=5)
    store.complete_run(run_id, summary={"best": 0.1})
    run = store.get_run(run_id)
    assert run["status"] == "completed" and run["summary"] == {"best": 0.1}
    assert run["completed_at"] >= run["created_at"]
    other = store.begin_run("broken")
    store.fail_run(other, "boom")
    assert store.get_run(other)["status"] == "failed"
    assert store.get_run(other)["error"] == "boom"
    assert store.get_run("00000000-0000-0000-0000-000000000000") is None


def test_list_runs_newest_first_and_pages(store: WorkspaceStore) -> None:
    ids = [store.begin_run(f"r{i}") for i in range(5)]
    listed = store.list_runs()
    assert isinstance(listed, pa.Table)
    assert listed.column("run_id").to_pylist() == ids[::-1]
    pages = [store.list_runs(limit=2, offset=o).column("run_id").to_pylist() for o in (0, 2, 4)]
    assert [i for page in pages for i in page] == ids[::-1]
    store.complete_run(ids[0])
    assert store.list_runs(status="completed").column("run_id").to_pylist() == [ids[0]]
    with pytest.raises(ValueError, match="status"):
        store.list_runs(status="done")


def test_pipelines(store: WorkspaceStore) -> None:
    run_id = store.begin_run("r")
    p1 = store.begin_pipeline(run_id, "a", {"steps": [1]}, {"n": 1}, "wheat", "h1")
    p2 = store.begin_pipeline(run_id, "b", None, None, "corn", None)
    store.complete_pipeline(p1, best_val=0.25, best_test=0.5, metric="rmse", duration_ms=12.5)
    got = store.get_pipeline(p1)
    assert (
        got["status"] == "completed"
        and got["best_val"] == 0.25
        and got["expanded_config"] == {"steps": [1]}
    )
    assert got["generator_choices"] == {"n": 1}
    assert store.list_pipelines(run_id=run_id).column("pipeline_id").to_pylist() == [p2, p1]
    assert store.list_pipelines(dataset_name="corn").column("pipeline_id").to_pylist() == [p2]
    store.fail_pipeline(p2, "diverged")
    assert (
        store.get_pipeline(p2)["status"] == "failed"
        and store.get_pipeline(p2)["error"] == "diverged"
    )


def test_doubles_are_eight_bytes(store: WorkspaceStore) -> None:
    rec = record_pipeline(store, with_predictions=False)
    store.complete_pipeline(
        rec.pipeline_id, best_val=0.1, best_test=1 / 3, metric="rmse", duration_ms=0.1
    )
    got = store.get_pipeline(rec.pipeline_id)
    assert got["best_val"] == 0.1 and got["best_test"] == 1 / 3
    [pid] = store.save_predictions([prediction_record(rec.pipeline_id, rec.chain_id, score=0.1)])
    assert store.get_prediction(pid)["val_score"] == 0.1


def test_chain_roundtrip(store: WorkspaceStore) -> None:
    rec = record_pipeline(store, with_predictions=False)
    chain = store.get_chain(rec.chain_id)
    assert chain["pipeline_id"] == rec.pipeline_id
    assert chain["shared_artifacts"] == {"0": rec.artifact_ids[0]}
    assert set(chain["fold_artifacts"]) == {"fold_0", "fold_1"}
    assert chain["steps"][1]["operator_class"] == "PLSRegression"
    table = store.get_chains_for_pipeline(rec.pipeline_id)
    assert isinstance(table, pa.Table) and table.column("chain_id").to_pylist() == [rec.chain_id]
    assert store.get_chain("nope-not-there") is None


def test_prediction_with_arrays_single_row_api(store: WorkspaceStore) -> None:
    rec = record_pipeline(store, with_predictions=False)
    pid = store.save_prediction(
        rec.pipeline_id,
        rec.chain_id,
        "wheat",
        "LogReg",
        "LogisticRegression",
        "fold_0",
        "val",
        val_score=0.8,
        metric="accuracy",
        task_type="classification",
        n_samples=3,
        n_features=12,
        scores={"accuracy": 0.8},
        best_params={"C": 1.0},
        branch_id=0,
        branch_name="main",
    )
    proba = np.array([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]])
    store.save_prediction_arrays(
        pid,
        y_true=[1, 0, 1],
        y_pred=[1, 0, 0],
        y_proba=proba,
        sample_indices=[4, 5, 6],
        weights=[1, 1, 2],
    )
    got = store.get_prediction(pid, load_arrays=True)
    assert got["scores"] == {"accuracy": 0.8} and got["best_params"] == {"C": 1.0}
    np.testing.assert_array_equal(got["y_true"], [1.0, 0.0, 1.0])
    assert got["y_proba"].shape == (3, 2)
    np.testing.assert_array_equal(got["y_proba"], proba)
    assert got["sample_indices"].dtype.kind == "i"
    np.testing.assert_array_equal(got["sample_indices"], [4, 5, 6])
    np.testing.assert_array_equal(got["weights"], [1.0, 1.0, 2.0])
    assert "y_true" not in store.get_prediction(pid)
    # replacing the arrays of a prediction keeps one set
    store.save_prediction_arrays(pid, y_true=[0.0], y_pred=[1.0])
    np.testing.assert_array_equal(store.get_prediction(pid, load_arrays=True)["y_true"], [0.0])


def test_bulk_predictions_arrays_roundtrip(store: WorkspaceStore) -> None:
    rec = record_pipeline(store, with_predictions=False)
    proba = np.random.default_rng(1).random((20, 3))
    records = [
        prediction_record(
            rec.pipeline_id,
            rec.chain_id,
            fold="fold_0",
            partition="val",
            y_proba=proba,
            weights=np.ones(20),
        ),
        prediction_record(rec.pipeline_id, rec.chain_id, fold="fold_0", partition="train", seed=3),
        {
            **prediction_record(rec.pipeline_id, None, fold="avg", partition="val"),
            "y_true": None,
            "y_pred": None,
            "sample_indices": None,
        },
    ]
    ids = store.save_predictions(records)
    first = store.get_prediction(ids[0], load_arrays=True)
    np.testing.assert_array_equal(first["y_proba"], proba)
    np.testing.assert_array_equal(first["y_true"], records[0]["y_true"])
    assert first["n_samples"] == 20
    second = store.get_prediction(ids[1], load_arrays=True)
    assert second["y_proba"] is None and second["weights"] is None
    np.testing.assert_array_equal(second["sample_indices"], np.arange(20))
    third = store.get_prediction(ids[2], load_arrays=True)
    assert third["chain_id"] is None and third["y_true"] is None


def test_nan_scores_and_nan_in_arrays(store: WorkspaceStore) -> None:
    rec = record_pipeline(store, with_predictions=False)
    record = prediction_record(rec.pipeline_id, rec.chain_id, score=math.nan)
    record["y_pred"] = np.array([math.nan] * 20)
    [pid] = store.save_predictions([record])
    got = store.get_prediction(pid, load_arrays=True)
    assert got["val_score"] is None or math.isnan(got["val_score"])
    assert np.isnan(got["y_pred"]).all()


def test_query_predictions_filters_and_stable_pages(store: WorkspaceStore) -> None:
    rec = record_pipeline(store, with_predictions=False)
    records = [
        prediction_record(
            rec.pipeline_id, rec.chain_id, fold=f"fold_{i}", partition=p, branch_id=b, score=i / 10
        )
        for i in range(6)
        for p in ("train", "val")
        for b in (0, 1)
    ]
    ids = store.save_predictions(records)
    everything = store.query_predictions()
    assert everything.num_rows == 24
    assert store.query_predictions(partition="val").num_rows == 12
    branch0 = store.query_predictions(branch_id=0)
    assert branch0.num_rows == 12 and set(branch0.column("branch_id").to_pylist()) == {0}
    assert store.query_predictions(run_id=rec.run_id, fold_id="fold_3").num_rows == 4
    assert store.query_predictions(dataset_name="nope").num_rows == 0
    pages = [
        store.query_predictions(limit=5, offset=o).column("prediction_id").to_pylist()
        for o in range(0, 24, 5)
    ]
    flat = [i for page in pages for i in page]
    assert len(flat) == 24 and set(flat) == set(ids)
    with pytest.raises(ValueError, match="unknown prediction filter 'colour'"):
        store.query_predictions(colour="red")


def test_top_predictions(store: WorkspaceStore) -> None:
    rec = record_pipeline(store, with_predictions=False)
    records = []
    for i, model in enumerate(["PLS", "PLS", "Ridge", "Ridge", "SVR"]):
        records.append(
            prediction_record(
                rec.pipeline_id,
                rec.chain_id,
                fold=f"fold_{i}",
                score=[0.5, 0.2, 0.4, 0.9, math.nan][i],
                model_class=model,
            )
        )
        records.append(
            prediction_record(
                rec.pipeline_id,
                rec.chain_id,
                fold=f"fold_{i}",
                partition="train",
                score=0.01,
                model_class=model,
            )
        )
    store.save_predictions(records)
    top = store.top_predictions(3)
    assert top.column("val_score").to_pylist() == [0.2, 0.4, 0.5]
    assert store.top_predictions(1, ascending=False).column("val_score").to_pylist() == [0.9]
    assert store.top_predictions(10).num_rows == 5  # the NaN score ranks last
    grouped = store.top_predictions(1, group_by="model_class")
    best = dict(
        zip(
            grouped.column("model_class").to_pylist(),
            grouped.column("val_score").to_pylist(),
            strict=True,
        )
    )
    assert best == {"PLS": 0.2, "Ridge": 0.4, "SVR": None}
    assert set(grouped.column("model_class").to_pylist()) == {"PLS", "Ridge", "SVR"}
    two = store.top_predictions(2, group_by="model_class")
    assert sorted(two.column("model_class").to_pylist()) == ["PLS", "PLS", "Ridge", "Ridge", "SVR"]
    assert store.top_predictions(5, partition="train").num_rows == 5
    assert store.top_predictions(5, dataset_name="other").num_rows == 0
    with pytest.raises(ValueError, match="unknown prediction column"):
        store.top_predictions(3, metric="val_score; DROP TABLE runs")
    with pytest.raises(ValueError, match="unknown prediction column"):
        store.top_predictions(3, group_by="nope")
    with pytest.raises(ValueError, match="n must be a positive integer"):
        store.top_predictions(0)
    assert store.list_runs().num_rows == 1


def test_top_predictions_of_one_run(store: WorkspaceStore) -> None:
    first = record_pipeline(store, seed=0)
    second = record_pipeline(store, seed=1)
    for rec in (first, second):
        top = store.top_predictions(10, run_id=rec.run_id)
        assert top.num_rows > 0
        assert set(top.column("pipeline_id").to_pylist()) == {rec.pipeline_id}
        grouped = store.top_predictions(1, run_id=rec.run_id, group_by="fold_id")
        assert set(grouped.column("pipeline_id").to_pylist()) == {rec.pipeline_id}
    per_run = [store.top_predictions(100, run_id=r.run_id).num_rows for r in (first, second)]
    assert store.top_predictions(100).num_rows == sum(per_run)
    assert store.top_predictions(5, run_id="00000000-0000-0000-0000-000000000000").num_rows == 0


def test_logs_and_run_summary(store: WorkspaceStore) -> None:
    rec = record_pipeline(store)
    other = record_pipeline(store, rec.run_id, seed=1, with_predictions=False)
    store.log_step(
        rec.pipeline_id, 2, "PLS", "error", 0.5, message="bad", details={"x": 1}, level="error"
    )
    log = store.get_pipeline_log(rec.pipeline_id)
    assert log.num_rows == 3
    assert log.column("level").to_pylist() == ["info", "warning", "error"]
    summary = {row["pipeline_id"]: row for row in store.get_run_log_summary(rec.run_id).to_pylist()}
    assert summary[rec.pipeline_id]["total_duration_ms"] == 4.5
    assert summary[rec.pipeline_id]["step_count"] == 3
    assert summary[rec.pipeline_id]["warning_count"] == 1
    assert summary[rec.pipeline_id]["error_count"] == 1
    assert summary[other.pipeline_id]["step_count"] == 0
    with pytest.raises(ValueError, match="level must be one of"):
        store.log_step(rec.pipeline_id, 0, "X", "fit", level="loud")
    with pytest.raises(KeyError, match="unknown pipeline_id"):
        store.log_step("no-such-pipeline", 0, "X", "fit")


def test_unknown_ids_raise_key_error_naming_them(store: WorkspaceStore) -> None:
    missing = "11111111-2222-3333-4444-555555555555"
    for call in (
        lambda: store.complete_run(missing),
        lambda: store.fail_run(missing, "x"),
        lambda: store.complete_pipeline(missing, 0.1, 0.1, "rmse", 1),
        lambda: store.fail_pipeline(missing, "x"),
        lambda: store.begin_pipeline(missing, "p", None, None, "d", None),
        lambda: store.save_chain(missing, [], 0, "M"),
        lambda: store.save_prediction_arrays(missing, y_true=[1.0], y_pred=[1.0]),
        lambda: store.delete_run(missing),
    ):
        with pytest.raises(KeyError, match=missing):
            call()
    assert store.list_runs().num_rows == 0 and store.list_pipelines().num_rows == 0


def test_orphan_writes_store_nothing(store: WorkspaceStore) -> None:
    rec = record_pipeline(store, with_predictions=False)
    good = prediction_record(rec.pipeline_id, rec.chain_id)
    with pytest.raises(KeyError, match="unknown pipeline_id"):
        store.save_predictions([good, {**good, "fold_id": "fold_9", "pipeline_id": "ghost"}])
    with pytest.raises(KeyError, match="unknown chain_id"):
        store.save_predictions([{**good, "chain_id": "ghost-chain"}])
    assert store.query_predictions().num_rows == 0
    with pytest.raises(KeyError, match="unknown artifact"):
        store.save_chain(rec.pipeline_id, [], 0, "M", fold_artifacts={"fold_0": "ghost-artifact"})
    assert store.get_chains_for_pipeline(rec.pipeline_id).num_rows == 1


def test_bad_values_are_typed_errors_naming_the_field(store: WorkspaceStore) -> None:
    rec = record_pipeline(store, with_predictions=False)
    with pytest.raises(TypeError, match="config is not JSON-serialisable"):
        store.begin_run("r", config={"obj": object()})
    with pytest.raises(ValueError, match="must have one length"):
        store.save_predictions(
            [{**prediction_record(rec.pipeline_id, rec.chain_id), "y_pred": np.zeros(3)}]
        )
    with pytest.raises(ValueError, match="prediction_id"):
        store.save_predictions(
            [{**prediction_record(rec.pipeline_id, rec.chain_id), "prediction_id": float("nan")}]
        )
    with pytest.raises(ValueError, match="run_id must be a non-empty id string, got nan"):
        store.begin_pipeline(float("nan"), "p", None, None, "d", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="partition must be one of"):
        store.save_predictions(
            [prediction_record(rec.pipeline_id, rec.chain_id, partition="holdout")]
        )
    with pytest.raises(ValueError, match="task_type must be one of"):
        store.save_predictions(
            [{**prediction_record(rec.pipeline_id, rec.chain_id), "task_type": "ranking"}]
        )
    with pytest.raises(TypeError, match="val_score must be a number"):
        store.save_predictions([prediction_record(rec.pipeline_id, rec.chain_id, score="0.3")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fold_strategy must be one of"):
        store.save_chain(rec.pipeline_id, [], 0, "M", fold_strategy="sometimes")
    with pytest.raises(TypeError, match="records must be a sequence"):
        store.save_predictions({"a": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown prediction fields"):
        store.save_predictions(
            [{**prediction_record(rec.pipeline_id, rec.chain_id), "colour": "red"}]
        )
    assert store.query_predictions().num_rows == 0


@pytest.mark.parametrize(
    ("branch_id", "with_chain"), [(0, True), (None, True), (None, False)], ids=str
)
def test_duplicate_natural_key_is_a_constraint_error_and_store_stays_usable(
    store: WorkspaceStore, branch_id: int | None, with_chain: bool
) -> None:
    """Also when the chain or the branch is missing (NULL): revision 0005's `natural_key`."""
    rec = record_pipeline(store, with_predictions=False)
    chain_id = rec.chain_id if with_chain else None
    record = prediction_record(rec.pipeline_id, chain_id, branch_id=branch_id)
    store.save_predictions([record])
    with pytest.raises(ConstraintError) as info:
        store.save_predictions(
            [prediction_record(rec.pipeline_id, chain_id, fold="fold_5"), record]
        )
    with pytest.raises(ConstraintError):  # twice in one batch
        store.save_predictions([prediction_record(rec.pipeline_id, chain_id, fold="fold_6")] * 2)
    assert isinstance(info.value, ValueError) and isinstance(info.value, StoreError)
    assert not isinstance(info.value, sa.exc.SQLAlchemyError)
    assert "save_predictions" in str(info.value)
    assert store.query_predictions().num_rows == 1  # the batch was all or nothing
    store.save_predictions([prediction_record(rec.pipeline_id, chain_id, fold="fold_7")])
    assert store.query_predictions().num_rows == 2


def test_transaction_groups_and_rolls_back(store: WorkspaceStore) -> None:
    with store.transaction():
        run_id = store.begin_run("grouped")
        pipeline_id = store.begin_pipeline(run_id, "p", None, None, "d", None)
        store.log_step(pipeline_id, 0, "X", "fit")
    assert store.get_run(run_id) is not None
    with pytest.raises(RuntimeError, match="abort"), store.transaction():
        store.begin_run("lost")
        store.begin_pipeline(run_id, "lost-pipeline", None, None, "d", None)
        raise RuntimeError("abort")
    assert store.list_runs().column("name").to_pylist() == ["grouped"]
    assert store.list_pipelines().num_rows == 1


def test_close_twice_and_use_after_close(open_store) -> None:
    store = open_store()
    run_id = store.begin_run("r")
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get_run(run_id)
    again = open_store()
    assert again.get_run(run_id)["name"] == "r"


def test_context_manager(workspace, database_url) -> None:
    with WorkspaceStore(workspace, url=database_url) as store:
        run_id = store.begin_run("ctx")
    with WorkspaceStore(workspace, url=database_url) as store:
        assert store.get_run(run_id)["name"] == "ctx"


def test_save_artifacts_in_bulk(store: WorkspaceStore) -> None:
    from sklearn.preprocessing import StandardScaler

    X = np.arange(12.0).reshape(4, 3)
    single = store.save_artifact(StandardScaler().fit(X), "StandardScaler", "transformer")
    ids = store.save_artifacts(
        [
            (StandardScaler().fit(X), "StandardScaler", "transformer"),  # same bytes as `single`
            {"obj": {"weights": [1, 2]}, "operator_class": "dict", "format": "pickle"},
            ({"weights": [1, 2]},),  # same object, other format: another artifact
            ({"weights": [1, 2]}, None, None, "pickle"),  # duplicate inside the batch
        ]
    )
    assert ids[0] == single and ids[1] == ids[3] and ids[2] != ids[1]
    assert store.load_artifact(ids[1]) == {"weights": [1, 2]}
    assert store.get_artifact(ids[1])["format"] == "pickle"
    assert store.list_artifacts().num_rows == 3
    with pytest.raises(ValueError, match="unsupported artifact format 'yaml'"):
        store.save_artifacts([({"a": 1}, None, None, "yaml")])
    with pytest.raises(TypeError, match=r"items\[0\] must be"):
        store.save_artifacts(["not a tuple"])
    with pytest.raises(ValueError, match="needs an 'obj' key"):
        store.save_artifacts([{"operator_class": "x"}])
    assert store.list_artifacts().num_rows == 3


def test_log_steps_in_bulk(store: WorkspaceStore) -> None:
    rec = record_pipeline(store, with_predictions=False)
    ids = store.log_steps(
        rec.pipeline_id,
        [
            {"step_idx": 0, "operator_class": "SNV", "event": "fit", "duration_ms": 2.0},
            {
                "step_idx": 1,
                "operator_class": "PLS",
                "event": "fit",
                "duration_ms": 3.0,
                "level": "warning",
            },
        ],
    )
    assert len(ids) == 2 and store.get_pipeline_log(rec.pipeline_id).num_rows == 2
    with pytest.raises(ValueError, match="unknown log fields"):
        store.log_steps(rec.pipeline_id, [{"step_idx": 0, "event": "fit", "colour": "red"}])
    with pytest.raises(ValueError, match="level must be one of"):
        store.log_steps(
            rec.pipeline_id,
            [{"step_idx": 0, "event": "fit"}, {"step_idx": 1, "event": "x", "level": "loud"}],
        )
    with pytest.raises(KeyError, match="unknown pipeline_id"):
        store.log_steps("ghost", [{"step_idx": 0, "event": "fit"}])
    assert store.get_pipeline_log(rec.pipeline_id).num_rows == 2


def test_caller_chosen_ids(store: WorkspaceStore) -> None:
    run_id = store.begin_run("mine", run_id="run-chosen-1")
    assert run_id == "run-chosen-1" and store.get_run("run-chosen-1")["name"] == "mine"
    pid = store.begin_pipeline(run_id, "p", None, None, "d", None, pipeline_id="pipe-chosen-1")
    assert pid == "pipe-chosen-1" and store.get_pipeline(pid)["run_id"] == run_id
    with pytest.raises(ConstraintError, match="begin_pipeline"):
        store.begin_pipeline(run_id, "again", None, None, "d", None, pipeline_id="pipe-chosen-1")
    with pytest.raises(ValueError, match="pipeline_id must be a non-empty id string"):
        store.begin_pipeline(run_id, "p", None, None, "d", None, pipeline_id=" ")
    assert store.list_pipelines().num_rows == 1


def test_stored_json_text_has_one_spelling(store: WorkspaceStore, backend: str) -> None:
    """Row inserts and the bulk (Arrow) path write the same text, so exports compare."""
    if backend == "postgresql":
        pytest.skip("JSONB stores parsed documents, not text")
    rec = record_pipeline(store, with_predictions=False)
    store.begin_run("text", config={"a": 1, "b": [1, 2]})
    [pid] = store.save_predictions([prediction_record(rec.pipeline_id, rec.chain_id)])
    with store.transaction() as session:
        config = session.execute(
            sa.text("SELECT CAST(config AS VARCHAR) FROM runs WHERE name = 'text'")
        ).scalar_one()
        scores = session.execute(
            sa.text("SELECT CAST(scores AS VARCHAR) FROM predictions WHERE prediction_id = :p"),
            {"p": pid},
        ).scalar_one()
    assert config == '{"a":1,"b":[1,2]}'
    assert scores == '{"rmse":0.5,"r2":0.9}'


def test_repositories_work_in_an_applications_own_session(store: WorkspaceStore) -> None:
    """An application composes the repositories in its own Session and transaction."""
    from sqlalchemy.orm import Session

    from nirs4all_store.repositories import PipelineRepository, PredictionRepository, RunRepository

    with Session(store.engine) as session, session.begin():
        run_id = RunRepository(session).create("from my app", config={"k": 1})
        pipeline_id = PipelineRepository(session).create(run_id, "p", dataset_name="wheat")
    with Session(store.engine) as session:
        assert RunRepository(session).get(run_id)["config"] == {"k": 1}
        assert PipelineRepository(session).get(pipeline_id)["run_id"] == run_id
        assert PredictionRepository(session).query({"pipeline_id": pipeline_id}).num_rows == 0
    with (
        pytest.raises(RuntimeError, match="rolled back"),
        Session(store.engine) as session,
        session.begin(),
    ):
        RunRepository(session).create("never stored")
        raise RuntimeError("rolled back by the application")
    assert store.list_runs().column("name").to_pylist() == ["from my app"]


def test_prediction_ids_are_uuids_in_one_spelling_on_every_backend(store: WorkspaceStore) -> None:
    """Prediction ids are native UUIDs on DuckDB (revision 0005): every backend takes the same
    ids, canonicalises them the same way and treats a non-UUID lookup as "not there"."""
    rec = record_pipeline(store, with_predictions=False)
    upper = "AB1C2A9E-2222-4000-8000-0000000000CD"
    [pid] = store.save_predictions(
        [{**prediction_record(rec.pipeline_id, rec.chain_id), "prediction_id": upper}]
    )
    assert pid == upper.lower()
    for spelling in (upper, pid, "{" + upper + "}"):
        got = store.get_prediction(spelling, load_arrays=True)
        assert got is not None and got["prediction_id"] == pid
        assert len(got["y_true"]) == 20
    assert store.query_predictions().column("prediction_id").to_pylist() == [pid]
    with pytest.raises(ValueError, match=r"prediction_id must be a UUID string .*got 'my-id'"):
        store.save_predictions(
            [
                {
                    **prediction_record(rec.pipeline_id, rec.chain_id, fold="f1"),
                    "prediction_id": "my-id",
                }
            ]
        )
    with pytest.raises(ValueError, match="prediction_id must be a UUID string"):
        store.save_prediction_arrays("my-id", y_true=[1.0])
    assert store.get_prediction("my-id") is None
    assert store.delete_prediction("my-id") is False
    assert store.query_predictions().num_rows == 1  # the refused batch stored nothing
    store.save_prediction_arrays(upper, y_true=[1.0, 2.0])
    assert store.get_prediction(pid, load_arrays=True)["y_true"].tolist() == [1.0, 2.0]
    assert store.delete_prediction(upper) is True
    assert store.get_prediction(pid) is None


def test_parents_checked_once_per_transaction_are_checked_again_after_a_delete(
    store: WorkspaceStore,
) -> None:
    """Inside one transaction a parent the transaction inserted or looked up is not looked
    up again, but any delete (here fail_pipeline dropping the chain) forgets that: writes
    naming the deleted parent are refused, not stored as orphans (DuckDB has no FKs)."""
    run_id = store.begin_run("r")
    artifact = store.save_artifact({"w": 1}, "Model", "model")
    with pytest.raises(KeyError, match="unknown chain_id"), store.transaction():
        pid = store.begin_pipeline(run_id, "p")
        chain = store.save_chain(pid, [], 0, "Model", fold_artifacts={"fold_0": artifact})
        store.save_predictions([prediction_record(pid, chain)])  # parents known: accepted
        store.fail_pipeline(pid, "boom")  # deletes the chain and its predictions
        store.save_predictions([prediction_record(pid, chain, fold="fold_1")])
    assert store.get_pipeline(pid) is None  # the whole transaction rolled back
    assert store.query_predictions().num_rows == 0
    assert store.get_artifact(artifact)["ref_count"] == 0
    with store.transaction():
        pid = store.begin_pipeline(run_id, "p")
        chain = store.save_chain(pid, [], 0, "Model", fold_artifacts={"fold_0": artifact})
        store.save_predictions([prediction_record(pid, chain)])
        store.log_steps(pid, [{"step_idx": 0, "event": "end"}])
        store.complete_pipeline(pid, best_val=0.5)
    assert store.get_pipeline(pid)["status"] == "completed"
    assert store.query_predictions(pipeline_id=pid).column("chain_id").to_pylist() == [chain]
    assert store.verify().ok


def test_bulk_pipelines_chains_and_logs_all_or_nothing(store: WorkspaceStore) -> None:
    run_id = store.begin_run("r")
    artifact = store.save_artifact({"w": 1}, "Model", "model")
    records = [
        {"run_id": run_id, "name": "done", "dataset_name": "d", "status": "completed",
         "best_val": 0.25, "metric": "rmse", "duration_ms": 12.0},
        {"run_id": run_id, "name": "broken", "status": "failed", "error": "Traceback: boom"},
        {"run_id": run_id, "name": "open"},
    ]  # fmt: skip
    done, broken, running = store.save_pipelines(records)
    rows = {p["pipeline_id"]: p for p in store.list_pipelines(run_id=run_id).to_pylist()}
    assert rows[done]["status"] == "completed" and rows[done]["best_val"] == 0.25
    assert rows[done]["completed_at"] is not None
    assert rows[broken]["status"] == "failed" and rows[broken]["error"] == "Traceback: boom"
    assert rows[running]["status"] == "running" and rows[running]["completed_at"] is None

    chain_ids = store.save_chains(
        [
            {"pipeline_id": pid, "steps": [], "model_step_idx": 0, "model_class": "M",
             "fold_artifacts": {"fold_0": artifact}, "shared_artifacts": {"0": artifact}}
            for pid in (done, running)
        ]
    )  # fmt: skip
    assert [store.get_chain(c)["pipeline_id"] for c in chain_ids] == [done, running]
    assert store.get_artifact(artifact)["ref_count"] == 2  # once per chain, however named
    log_ids = store.save_logs(
        [{"pipeline_id": done, "step_idx": 0, "event": "end"},
         {"pipeline_id": running, "step_idx": 1, "event": "start", "level": "warning"}]
    )  # fmt: skip
    assert len(set(log_ids)) == 2
    assert store.get_pipeline_log(running).column("level").to_pylist() == ["warning"]

    # One bad record: nothing of the batch is written, the error names the culprit.
    with pytest.raises(KeyError, match="unknown run_id"):
        store.save_pipelines([{"run_id": run_id, "name": "x"}, {"run_id": "nope", "name": "y"}])
    with pytest.raises(ValueError, match="status must be one of"):
        store.save_pipelines([{"run_id": run_id, "name": "x", "status": "paused"}])
    with pytest.raises(ValueError, match="error"):
        store.save_pipelines([{"run_id": run_id, "name": "x", "status": "failed"}])
    with pytest.raises(KeyError, match="unknown artifact"):
        store.save_chains(
            [{"pipeline_id": done, "steps": [], "model_step_idx": 0, "model_class": "M"},
             {"pipeline_id": done, "steps": [], "model_step_idx": 0, "model_class": "M",
              "fold_artifacts": {"fold_0": "ghost"}}]
        )  # fmt: skip
    with pytest.raises(KeyError, match="unknown pipeline_id"):
        store.save_logs([{"pipeline_id": done, "step_idx": 0, "event": "e"},
                         {"pipeline_id": "nope", "step_idx": 0, "event": "e"}])  # fmt: skip
    with pytest.raises(ValueError, match="unknown log fields"):
        store.save_logs([{"pipeline_id": done, "step_idx": 0, "event": "e", "colour": 1}])
    with pytest.raises(TypeError, match="sequence of dicts"):
        store.save_chains({"pipeline_id": done})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"records\[1\] must be a dict, got str"):
        store.save_pipelines([{"run_id": run_id, "name": "x"}, "y"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"entries\[0\] must be a dict, got tuple"):
        store.save_logs([("pipeline_id", done)])  # type: ignore[list-item]
    with pytest.raises(KeyError, match=r"unknown pipeline_id\(s\) \['nope', 'nope2'\]"):
        store.save_chains(
            [{"pipeline_id": p, "steps": [], "model_step_idx": 0, "model_class": "M"}
             for p in ("nope", "nope2")]
        )  # fmt: skip
    assert store.list_pipelines(run_id=run_id).num_rows == 3
    assert store.get_chains_for_pipeline(done).num_rows == 1
    assert store.get_artifact(artifact)["ref_count"] == 2
    assert store.get_pipeline_log(done).num_rows == 1
    assert store.verify().ok


def test_bulk_inserts_above_the_arrow_threshold_keep_every_value(store: WorkspaceStore) -> None:
    """From ARROW_MIN_ROWS rows DuckDB inserts through Arrow: JSON, timestamps (UTC, any time
    zone), NULLs and numbers come back as they went in, as through the row-by-row path."""
    from nirs4all_store.repositories.base import ARROW_MIN_ROWS

    run_id = store.begin_run("r")
    n = ARROW_MIN_ROWS + 4
    config = {"steps": [{"class": "PLS", "params": {"n": 3, "scale": True, "tol": 1e-06}}]}
    pids = store.save_pipelines(
        [{"run_id": run_id, "name": f"p{i}", "expanded_config": config, "dataset_hash": None,
          "status": "completed", "best_val": None if i % 2 else i / 3}
         for i in range(n)]
    )  # fmt: skip
    [single] = store.save_pipelines([{"run_id": run_id, "name": "one", "expanded_config": config}])
    rows = {pid: store.get_pipeline(pid) for pid in [*pids, single]}
    for i, pid in enumerate(pids):
        assert rows[pid]["expanded_config"] == config
        assert rows[pid]["best_val"] == (None if i % 2 else i / 3)
        assert rows[pid]["dataset_hash"] is None
        assert rows[pid]["created_at"].utcoffset().total_seconds() == 0
    bulk_created = rows[pids[0]]["created_at"]
    assert abs((rows[single]["created_at"] - bulk_created).total_seconds()) < 60
    store.save_logs(
        [{"pipeline_id": pids[0], "step_idx": i, "event": "end", "details": {"i": i, "x": None}}
         for i in range(n)]
    )  # fmt: skip
    details = store.get_pipeline_log(pids[0]).column("details").to_pylist()
    decoded = [json.loads(d) if isinstance(d, str) else d for d in details]
    assert sorted(decoded, key=lambda d: d["i"]) == [{"i": i, "x": None} for i in range(n)]
