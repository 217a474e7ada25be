"""nirs4all 0.8's leaderboard, per-dataset and project calls of `Nirs4allWorkspaceStore`, on
every backend: chain summaries right after upserts and deletes, metric direction, the
ArrayStore maintenance calls, projects and the cross-run artifact cache."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("polars", reason="polars is not installed (nirs4all's frames are polars)")

from nirs4all_store.integrations.nirs4all_store import Nirs4allWorkspaceStore


@pytest.fixture
def n4a(workspace: Path, database_url: str | None) -> Iterator[Nirs4allWorkspaceStore]:
    store = Nirs4allWorkspaceStore(workspace, url=database_url)
    yield store
    store.close()


def chain(store: Nirs4allWorkspaceStore, pipeline_id: str, model: str, **extra: Any) -> str:
    artifact_id = store.save_artifact({"model": model}, model, "model")
    return store.save_chain(
        pipeline_id=pipeline_id,
        steps=[{"step_idx": 1, "operator_class": model, "artifact_ids": [artifact_id]}],
        model_step_idx=1,
        model_class=f"sklearn.{model}",
        fold_artifacts={"fold_0": artifact_id},
        **extra,
    )


def predict(
    store: Nirs4allWorkspaceStore, pipeline_id: str, chain_id: str, fold: str, **fields: Any
) -> str:
    record: dict[str, Any] = {
        "dataset_name": "ds",
        "model_name": "PLS",
        "model_class": "sklearn.PLSRegression",
        "fold_id": fold,
        "partition": "val",
        "metric": "rmse",
        "task_type": "regression",
        **fields,
    }
    return store.save_prediction(pipeline_id=pipeline_id, chain_id=chain_id, **record)


def two_chains(store: Nirs4allWorkspaceStore) -> tuple[str, str, str, str]:
    """Chain a (rmse 1.0 and 3.0 -> 2.0) and chain b (rmse 1.5), with a refit for a."""
    run_id = store.begin_run("r", {}, [{"name": "ds"}])
    pipeline_id = store.begin_pipeline(run_id, "p", {}, None, "ds", None)
    a, b = chain(store, pipeline_id, "PLSRegression"), chain(store, pipeline_id, "Ridge")
    scores = {"val": {"rmse": 1.0, "r2": 0.5}}
    predict(store, pipeline_id, a, "0", val_score=1.0, test_score=2.0, scores=scores)
    predict(store, pipeline_id, a, "1", val_score=3.0, scores={"val": {"rmse": 3.0}})
    predict(store, pipeline_id, a, "avg_agg", val_score=50.0)  # aggregate rows stay out
    predict(store, pipeline_id, b, "0", val_score=1.5, model_class="sklearn.Ridge")
    refit = {"partition": "test", "refit_context": "standalone", "scores": {"test": {"rmse": 0.7}}}
    predict(store, pipeline_id, a, "final", test_score=0.7, train_score=0.1, **refit)
    return run_id, pipeline_id, a, b


def test_chain_summaries_are_live_after_upserts_and_deletes(n4a: Nirs4allWorkspaceStore) -> None:
    run_id, pipeline_id, a, b = two_chains(n4a)
    rows = {r["chain_id"]: r for r in n4a.query_chain_summaries(run_id=run_id).to_dicts()}
    assert rows[a]["cv_val_score"] == pytest.approx(2.0) and rows[a]["cv_fold_count"] == 2
    assert rows[a]["final_test_score"] == pytest.approx(0.7)
    assert json.loads(rows[a]["final_scores"]) == {"test": {"rmse": 0.7}}
    assert json.loads(rows[a]["cv_scores"]) == {"val": {"rmse": 2.0, "r2": 0.5}}
    assert rows[a]["metric"] == "rmse" and rows[a]["model_name"] == "PLS"  # from predictions
    assert rows[a]["run_id"] == run_id and rows[a]["pipeline_status"] == "running"
    assert rows[b]["cv_val_score"] == pytest.approx(1.5) and rows[b]["final_test_score"] is None
    predict(n4a, pipeline_id, a, "1", val_score=5.0)  # upsert of fold 1: 3.0 -> 5.0
    assert n4a.query_chain_summaries(chain_id=a)["cv_val_score"].to_list() == [3.0]
    fold0 = n4a.get_chain_predictions(a, partition="val", fold_id="0")["prediction_id"][0]
    assert n4a.delete_prediction(fold0)
    summary = n4a.query_chain_summaries(chain_id=[a, b])
    assert dict(zip(summary["chain_id"], summary["cv_val_score"], strict=True)) == {
        a: 5.0,
        b: 1.5,
    }
    assert n4a.query_chain_summaries(model_class="sklearn.Ri%")["chain_id"].to_list() == [b]
    assert n4a.query_chain_summaries(chain_id=[a, b], limit=1, offset=1).height == 1
    assert n4a.query_chain_summaries(dataset_name="other").height == 0
    with pytest.raises(ValueError, match="unknown chain summary filter 'colour'"):
        n4a.query_top_chains(colour="red")


def test_top_chains_take_the_direction_from_the_metric(n4a: Nirs4allWorkspaceStore) -> None:
    _, pipeline_id, a, b = two_chains(n4a)
    assert n4a.query_top_chains("rmse")["chain_id"].to_list() == [b, a]  # lower is better
    assert n4a.query_top_chains("rmse", ascending=False)["chain_id"].to_list() == [a, b]
    assert n4a.query_top_chains("rmse", 1)["chain_id"].to_list() == [b]
    assert n4a.query_top_chains("rmse", offset=1)["chain_id"].to_list() == [a]
    c = chain(n4a, pipeline_id, "SVR")
    predict(n4a, pipeline_id, c, "0", val_score=0.9, metric="r2")
    predict(n4a, pipeline_id, c, "1", val_score=0.1, metric="r2", model_name="SVR2")
    d = chain(n4a, pipeline_id, "SVC")
    predict(n4a, pipeline_id, d, "0", val_score=0.8, metric="r2")
    assert n4a.query_top_chains("r2")["chain_id"].to_list() == [d, c]  # 0.8 > 0.5
    # No metric: each chain ranked by its own metric's direction; NULL scores last.
    e = chain(n4a, pipeline_id, "Lasso")
    ranked = n4a.query_top_chains(n=10)["chain_id"].to_list()
    assert ranked[-1] == e and ranked.index(d) < ranked.index(c)
    top = n4a.query_top_aggregated_predictions("rmse", score_column="min_val_score")
    assert top["chain_id"].to_list() == [b, a]
    assert n4a.query_top_chains("rmse", score_column="final_test_score")["chain_id"][0] == a
    agg = n4a.query_aggregated_predictions(chain_id=a, score_scope="all")
    assert agg["cv_val_score"].to_list() == [2.0]
    with pytest.raises(ValueError, match="invalid score column 'val'"):
        n4a.query_top_chains("rmse", score_column="val")
    with pytest.raises(ValueError, match="score_scope"):
        n4a.query_aggregated_predictions(score_scope="best")
    with pytest.raises(ValueError, match="n must be a positive integer"):
        n4a.query_top_chains("rmse", 0)


def test_chain_predictions_drill_down(n4a: Nirs4allWorkspaceStore) -> None:
    _, _, a, _ = two_chains(n4a)
    rows = n4a.get_chain_predictions(a)
    assert list(zip(rows["partition"], rows["fold_id"], strict=True)) == [
        ("test", "final"),
        ("val", "0"),
        ("val", "1"),
        ("val", "avg_agg"),
    ]
    assert json.loads(rows["scores"][1]) == {"val": {"rmse": 1.0, "r2": 0.5}}
    assert n4a.get_chain_predictions(a, "test")["fold_id"].to_list() == ["final"]
    assert n4a.get_chain_predictions("no-such-chain").height == 0
    with pytest.raises(ValueError, match="partition"):
        n4a.get_chain_predictions(a, "validation")


def arrays(store: Nirs4allWorkspaceStore, ids: list[str]) -> None:
    store.array_store.save_batch(
        [
            {
                "prediction_id": pid,
                "y_true": np.arange(3.0),
                "y_pred": np.arange(3.0) + i,
                "y_proba": np.full((3, 2), 0.5) if i == 0 else None,
                "sample_indices": np.arange(3),
            }
            for i, pid in enumerate(ids)
        ]
    )


def test_array_store_per_dataset_calls(n4a: Nirs4allWorkspaceStore) -> None:
    _, pipeline_id, a, b = two_chains(n4a)
    other = predict(n4a, pipeline_id, b, "9", dataset_name="other", val_score=2.0)
    ids = n4a.get_chain_predictions(a, "val")["prediction_id"].to_list()
    arrays(n4a, [*ids[:2], other])
    frame = n4a.array_store.load_dataset("ds")
    assert frame.columns[:3] == ["prediction_id", "dataset_name", "model_name"]
    assert sorted(frame["prediction_id"].to_list()) == sorted(ids[:2])
    first = frame.filter(frame["fold_id"] == "0").to_dicts()[0]
    assert first["y_proba"] == [0.5] * 6 and first["y_proba_shape"] == [3, 2]
    assert first["sample_indices"] == [0, 1, 2] and first["sample_metadata"] is None
    with pytest.raises(FileNotFoundError, match="'nope'"):
        n4a.array_store.load_dataset("nope")
    everything = n4a.query_predictions()["prediction_id"].to_list()
    check = n4a.array_store.integrity_check(expected_ids=set(everything))
    assert check["orphan_ids"] == [] and check["corrupt_files"] == []
    assert sorted(check["missing_ids"]) == sorted(set(everything) - {*ids[:2], other})
    assert n4a.array_store.integrity_check(expected_ids={ids[0]})["orphan_ids"] == sorted(
        [ids[1], other]
    )
    stats = n4a.array_store.compact()
    assert stats["ds"] == {
        "rows_before": 2,
        "rows_after": 2,
        "rows_removed": 0,
        "bytes_before": 0,
        "bytes_after": 0,
    }
    assert set(n4a.array_store.compact("other")) == {"other"}
    assert n4a.array_store.delete_dataset("ds") is True
    assert n4a.array_store.delete_dataset("ds") is False
    assert n4a.array_store.list_datasets() == ["other"]
    assert n4a.get_prediction(ids[0]) is not None  # predictions stay, as nirs4all's


def test_delete_dataset_predictions(n4a: Nirs4allWorkspaceStore) -> None:
    run_id, pipeline_id, a, b = two_chains(n4a)
    other = predict(n4a, pipeline_id, b, "9", dataset_name="other", val_score=2.0)
    arrays(n4a, [n4a.get_chain_predictions(a)["prediction_id"][0], other])
    assert n4a.delete_dataset_predictions("ds") == 5
    assert n4a.query_predictions()["prediction_id"].to_list() == [other]
    assert n4a.array_store.list_datasets() == ["other"]
    assert n4a.delete_dataset_predictions("ds") == 0
    summaries = n4a.query_chain_summaries(run_id=run_id)  # chains stay, summaries follow
    assert summaries.height == 2 and summaries.filter(summaries["chain_id"] == a)[
        "cv_fold_count"
    ].to_list() == [0]
    assert n4a.get_chain(a) is not None and n4a.verify().ok


def test_projects(n4a: Nirs4allWorkspaceStore) -> None:
    run_id = n4a.begin_run("r", {}, [{"name": "ds"}])
    other_run = n4a.begin_run("r2", {}, [{"name": "ds"}])
    first = n4a.create_project("wheat", "protein", "#ff0000")
    assert n4a.get_or_create_project("wheat") == first
    second = n4a.get_or_create_project("barley")
    project = n4a.get_project(second)
    assert project is not None and project["name"] == "barley"
    assert project["color"] == "#14b8a6" and project["description"] == ""
    assert n4a.list_projects()["project_id"].to_list() == [second, first]  # newest first
    with pytest.raises(ValueError, match="'wheat' exists already"):
        n4a.create_project("wheat")
    n4a.update_project(first, "durum wheat", color="#00ff00")
    renamed = n4a.get_project_by_name("durum wheat")
    assert renamed is not None and renamed["color"] == "#00ff00"
    assert renamed["updated_at"] >= renamed["created_at"]
    assert n4a.get_project_by_name("wheat") is None
    with pytest.raises(KeyError, match="unknown project_id 'nope'"):
        n4a.update_project("nope", "x")
    n4a.set_run_project(run_id, first)
    with pytest.raises(KeyError, match="unknown project_id"):
        n4a.set_run_project(other_run, "nope")
    with pytest.raises(KeyError, match="unknown run_id"):
        n4a.set_run_project("no-run", first)
    assert n4a.list_runs(project_id=first)["run_id"].to_list() == [run_id]
    assert n4a.list_runs(project_id=first, dataset="ds", limit=1)["run_id"].to_list() == [run_id]
    assert n4a.list_runs(project_id=second).height == 0
    assert n4a.delete_project(first) is True and n4a.delete_project(first) is False
    assert n4a.get_run(run_id)["project_id"] is None  # type: ignore[index]
    assert n4a.list_runs().height == 2


def test_cross_run_artifact_cache(n4a: Nirs4allWorkspaceStore) -> None:
    artifact_id = n4a.save_artifact_with_cache_key(
        {"w": 1}, "Scaler", "transformer", "joblib", "chain-h", "input-h", "data-h"
    )
    assert n4a.find_cached_artifact("chain-h", "input-h") == artifact_id  # saved, in flight
    assert n4a.find_cached_artifact("chain-h", "other") is None
    same = n4a.save_artifact_with_cache_key(
        {"w": 1}, "Scaler", "transformer", "joblib", "chain-2", "input-2", "data-h"
    )
    assert same == artifact_id  # identical bytes: one artifact, its key moved
    plain = n4a.save_artifact({"w": 2}, "Scaler", "transformer")
    n4a.update_artifact_cache_key(plain, "chain-3", "input-3", "data-3")
    assert n4a.find_cached_artifact("chain-3", "input-3") == plain
    with pytest.raises(KeyError, match="unknown artifact_id 'nope'"):
        n4a.update_artifact_cache_key("nope", "a", "b", "c")
    assert n4a.invalidate_dataset_cache("data-h") == 1
    assert n4a.invalidate_dataset_cache("data-h") == 0
    assert n4a.find_cached_artifact("chain-2", "input-2") is None
    assert n4a.get_artifact(artifact_id)["ref_count"] == 0  # type: ignore[index]
    # An artifact whose last chain reference was released is garbage, not a hit.
    run_id = n4a.begin_run("r", {}, [])
    pipeline_id = n4a.begin_pipeline(run_id, "p", {}, None, "ds", None)
    n4a.save_chain(pipeline_id, [], 0, "M", fold_artifacts={"fold_0": plain})
    assert n4a.get_artifact(plain)["ref_count"] == 1  # type: ignore[index]
    n4a.delete_run(run_id, delete_artifacts=False)
    assert n4a.find_cached_artifact("chain-3", "input-3") is None
    assert n4a.verify().ok
