"""Exports: predictions to Parquet, runs to YAML, pipeline configs to JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from builders import regression_setup

from nirs4all_store import WorkspaceStore


def predictions(store: WorkspaceStore) -> dict[str, Any]:
    """Two pipelines of one run (datasets wheat and corn) and a second run; with arrays."""
    run_id, pipeline_id, chain_id = regression_setup(store)
    other_pipeline = store.begin_pipeline(
        run_id, "p2", expanded_config={"model": "pls"}, dataset_name="corn"
    )
    other_run = store.begin_run("other")
    third_pipeline = store.begin_pipeline(other_run, "p3", dataset_name="wheat")
    rng = np.random.default_rng(4)
    records = []
    for pipeline, dataset, chain in (
        (pipeline_id, "wheat", chain_id),
        (other_pipeline, "corn", None),
        (third_pipeline, "wheat", None),
    ):
        for fold in range(2):
            for partition in ("val", "test"):
                n = 5 + fold
                records.append(
                    {
                        "pipeline_id": pipeline,
                        "chain_id": chain,
                        "dataset_name": dataset,
                        "model_name": "ridge",
                        "model_class": "Ridge",
                        "fold_id": f"fold_{fold}",
                        "partition": partition,
                        "val_score": float(rng.random()),
                        "test_score": None if partition == "val" else 0.25,
                        "metric": "rmse",
                        "task_type": "regression",
                        "scores": {"rmse": 0.5, "r2": 0.9},
                        "best_params": {"alpha": 1.0},
                        "branch_id": fold,
                        "y_true": rng.normal(size=n),
                        "y_pred": rng.normal(size=n),
                        "y_proba": rng.random((n, 2)) if partition == "test" else None,
                    }
                )
    ids = store.save_predictions(records)
    return {
        "run_id": run_id,
        "other_run": other_run,
        "pipeline_id": pipeline_id,
        "chain_id": chain_id,
        "ids": ids,
    }


def same_rows(exported: pa.Table, queried: pa.Table) -> None:
    """Same column names, Arrow types (nullability aside) and values, in the same order."""
    assert exported.column_names[: queried.num_columns] == queried.column_names
    for name in queried.column_names:
        assert exported.schema.field(name).type == queried.schema.field(name).type, name
        assert exported.column(name).to_pylist() == queried.column(name).to_pylist(), name


def test_parquet_read_back_equals_query_predictions(store: WorkspaceStore, tmp_path: Path) -> None:
    data = predictions(store)
    for filters in (
        {},
        {"dataset_name": "wheat"},
        {"run_id": data["run_id"], "partition": "val"},
        {"branch_id": [0]},
    ):
        out = store.export_predictions_parquet(tmp_path / "deep" / "p.parquet", **filters)
        exported = pq.read_table(out)
        queried = store.query_predictions(**filters)
        assert exported.num_rows == queried.num_rows > 0
        assert exported.column_names == queried.column_names
        same_rows(exported, queried)


def test_include_arrays_adds_list_columns(store: WorkspaceStore, tmp_path: Path) -> None:
    predictions(store)
    out = store.export_predictions_parquet(
        tmp_path / "arrays", include_arrays=True, dataset_name="corn"
    )
    assert out.suffix == ".parquet"
    exported = pq.read_table(out)
    queried = store.query_predictions(dataset_name="corn")
    same_rows(exported, queried)
    assert exported.column_names[queried.num_columns :] == ["y_true", "y_pred", "y_proba"]
    for row in exported.to_pylist():
        stored = store.get_prediction(row["prediction_id"], load_arrays=True)
        assert stored is not None
        assert row["y_true"] == stored["y_true"].tolist()
        assert row["y_pred"] == stored["y_pred"].tolist()
        if stored["y_proba"] is None:
            assert row["y_proba"] is None
        else:
            assert row["y_proba"] == stored["y_proba"].tolist()


@pytest.mark.parametrize("include_arrays", [False, True])
def test_empty_result_is_a_valid_file_with_the_schema(
    store: WorkspaceStore, tmp_path: Path, include_arrays: bool
) -> None:
    predictions(store)
    out = store.export_predictions_parquet(
        tmp_path / "empty.parquet", include_arrays=include_arrays, dataset_name="rice"
    )
    exported = pq.read_table(out)
    queried = store.query_predictions(dataset_name="wheat")
    assert exported.num_rows == 0
    extra = ["y_true", "y_pred", "y_proba"] if include_arrays else []
    assert exported.column_names == queried.column_names + extra
    for name in queried.column_names:
        assert exported.schema.field(name).type == queried.schema.field(name).type, name


def test_bad_filters_and_unknown_ids_leave_no_file(store: WorkspaceStore, tmp_path: Path) -> None:
    data = predictions(store)
    target = tmp_path / "out"
    with pytest.raises(ValueError, match=r"unknown prediction filter.*'colour'"):
        store.export_predictions_parquet(target / "x.parquet", colour="red")
    with pytest.raises(KeyError, match="unknown run_id 'nope'"):
        store.export_run("nope", target / "run.yaml")
    with pytest.raises(KeyError, match="unknown pipeline_id 'nope'"):
        store.export_pipeline_config("nope", target / "cfg.json")
    assert not target.exists() or list(target.iterdir()) == []
    assert store.export_run(data["run_id"], target / "run.yaml").is_file()
    assert sorted(p.name for p in target.iterdir()) == ["run.yaml"]  # no temporary left


def test_run_yaml_has_run_pipelines_and_chains(store: WorkspaceStore, tmp_path: Path) -> None:
    data = predictions(store)
    store.complete_run(data["run_id"], summary={"best": 0.1, "note": "yes", "tiny": 1e-5})
    out = store.export_run(data["run_id"], tmp_path / "runs" / "r1")
    assert out.suffix == ".yaml"
    doc = yaml.safe_load(out.read_text(encoding="utf-8"))
    run = store.get_run(data["run_id"])
    assert run is not None
    assert doc["run"]["run_id"] == data["run_id"]
    assert doc["run"]["name"] == run["name"]
    assert doc["run"]["status"] == "completed"
    assert doc["run"]["summary"] == {"best": 0.1, "note": "yes", "tiny": 1e-5}
    assert doc["run"]["created_at"] == run["created_at"].isoformat()
    by_id = {p["pipeline_id"]: p for p in doc["pipelines"]}
    assert set(by_id) == set(
        store.list_pipelines(run_id=data["run_id"]).column("pipeline_id").to_pylist()
    )
    main = by_id[data["pipeline_id"]]
    assert [c["chain_id"] for c in main["chains"]] == [data["chain_id"]]
    chain = store.get_chain(data["chain_id"])
    assert chain is not None
    assert main["chains"][0]["fold_artifacts"] == chain["fold_artifacts"]
    assert main["chains"][0]["steps"] == chain["steps"]
    assert data["other_run"] not in out.read_text()


def test_pipeline_config_json_and_bare_names_in_the_current_folder(
    store: WorkspaceStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = predictions(store)
    out = store.export_pipeline_config(data["pipeline_id"], "config")
    assert out == tmp_path / "config.json"
    pipeline = store.get_pipeline(data["pipeline_id"])
    assert pipeline is not None
    assert json.loads(out.read_text()) == pipeline["expanded_config"]
    parquet = store.export_predictions_parquet("all.parquet")
    assert parquet == tmp_path / "all.parquet"
    assert pq.read_table(parquet).num_rows == store.query_predictions().num_rows
