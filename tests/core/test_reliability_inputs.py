"""Issue 15, items 8, 9 and 10: bad input is a typed error naming the field, before any SQL,
the same on every backend (the `store` fixture runs each test on DuckDB, SQLite, PostgreSQL).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import pytest
from helpers import prediction_record

from nirs4all_store import WorkspaceStore


def _prediction(store: WorkspaceStore, **extra: Any) -> dict[str, Any]:
    pipeline_id = store.begin_pipeline(store.begin_run("r"), "p", dataset_name="wheat")
    return prediction_record(pipeline_id, None, **extra)


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def _circular() -> Any:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        ("n_samples", 2**70, ValueError, "n_samples must fit in 64 bits"),
        ("branch_id", "x", TypeError, "branch_id must be an integer"),
        ("model_name", "bad\x00name", ValueError, "model_name must not contain NUL"),
        ("model_name", "lone \ud800", ValueError, "model_name must be valid Unicode"),
        ("scores", _deep(5000), ValueError, "scores is circular or nested too deeply"),
        ("scores", _circular(), ValueError, "scores is circular or nested too deeply"),
        ("scores", {"k": "nul\x00"}, ValueError, "scores holds a NUL character"),
        ("y_true", np.arange(20) + 1j, TypeError, "y_true must be real numbers"),
        ("y_proba", np.zeros((20, 0)), ValueError, "y_proba must have at least one row"),
    ],
)
def test_bad_prediction_fields_are_named_on_every_backend(
    store: WorkspaceStore, field: str, value: Any, error: type[Exception], message: str
) -> None:
    record = _prediction(store)
    record[field] = value
    with pytest.raises(error, match=message):
        store.save_predictions([record])
    assert store.query_predictions().num_rows == 0


@pytest.mark.parametrize("shape", [(0, 3), (5, 0)])
def test_empty_probability_matrices_are_refused_alike(
    store: WorkspaceStore, shape: tuple[int, int]
) -> None:
    record = _prediction(store, n=shape[0])
    record["y_proba"] = np.zeros(shape)
    with pytest.raises(ValueError, match="y_proba must have at least one row and one column"):
        store.save_predictions([record])


@pytest.mark.parametrize("bad", ["../../X", "a/b", "a\\b", "x\x00", "tab\there"])
def test_ids_that_could_name_paths_are_refused(store: WorkspaceStore, bad: str) -> None:
    with pytest.raises(ValueError, match="run_id must not hold"):
        store.begin_run("r", run_id=bad)
    pipeline_id = store.begin_pipeline(store.begin_run("ok"), "p", dataset_name="d")
    with pytest.raises(ValueError, match="chain_id must not hold"):
        store.get_chain(bad)
    assert store.list_runs().num_rows == 1
    assert pipeline_id


def test_run_config_circular_or_deep_is_named(store: WorkspaceStore) -> None:
    for config in (_circular(), _deep(5000)):
        with pytest.raises(ValueError, match="config is circular or nested too deeply"):
            store.begin_run("r", config)


def test_unpicklable_artifact_is_a_type_error_naming_the_item(store: WorkspaceStore) -> None:
    with pytest.raises(TypeError, match=r"items\[1\] \(lock\) cannot be serialised as pickle"):
        store.save_artifacts(
            [({"ok": 1}, None, None, "pickle"), (threading.Lock(), None, None, "pickle")]
        )
    with pytest.raises(TypeError, match=r"items\[0\] \(function\) cannot be serialised"):
        store.save_artifact(lambda x: x, format="pickle")
    with pytest.raises(TypeError, match=r"items\[0\]\.operator_class must be a string"):
        store.save_artifact({"a": 1}, operator_class=5)  # type: ignore[arg-type]
    assert store.list_artifacts().num_rows == 0


@pytest.mark.parametrize("grace", ["x", math.nan, math.inf, -1, None, True])
def test_grace_must_be_a_finite_number(store: WorkspaceStore, grace: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="grace_seconds must be"):
        store.gc_artifacts(grace_seconds=grace)
    with pytest.raises((TypeError, ValueError), match="grace_seconds must be"):
        store.verify(repair=True, grace_seconds=grace)
