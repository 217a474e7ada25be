"""nirs4all 0.8's own store integration checks (tests/integration/storage/
test_duckdb_pipeline.py at nirs4all 0.8.0), run through `use_nirs4all_store` on every backend.

The checks are nirs4all's: a `PipelineRunner` run gives predictions with finite scores, no
legacy file hierarchy, artifacts in 2-character shard folders, chains with a model class,
preprocessings and an integer model step, one completed run and pipeline, and a failing
pipeline leaves its run failed or completed. Like nirs4all's test, the store is inspected
through raw SQL (`store._fetch_pl`), the way nirs4all itself reads it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip(
    "nirs4all", reason="nirs4all is not installed (pip install 'nirs4all-store[nirs4all]')"
)

from nirs4all.pipeline.runner import PipelineRunner
from sklearn.cross_decomposition import PLSRegression
from sklearn.model_selection import KFold
from sklearn.preprocessing import MinMaxScaler

from nirs4all_store.integrations.nirs4all import use_nirs4all_store


@pytest.fixture
def patched(database_url: str | None) -> Iterator[str | None]:
    patch = use_nirs4all_store(database_url)
    try:
        yield database_url
    finally:
        patch.restore()


@pytest.fixture
def regression_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(42)
    X = rng.randn(60, 50)
    y = X[:, 0] * 2 + X[:, 1] * 0.5 + rng.randn(60) * 0.1
    return X, y


def run(workspace: Path, pipeline: list[Any], data: Any, **kwargs: Any) -> Any:
    runner = PipelineRunner(workspace_path=workspace, verbose=0, **kwargs)
    return runner.run(pipeline, data)


def fetch(workspace: Path, sql: str) -> list[dict[str, Any]]:
    from nirs4all.pipeline.storage.workspace_store import WorkspaceStore

    store = WorkspaceStore(workspace)
    try:
        return store._fetch_pl(sql).to_dicts()
    finally:
        store.close()


def test_cross_validated_pipeline(
    patched: str | None, tmp_path: Path, regression_data: Any
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    pipeline = [
        MinMaxScaler(),
        KFold(n_splits=3, shuffle=True, random_state=42),
        {"model": PLSRegression(n_components=3)},
    ]
    predictions, _ = run(workspace, pipeline, regression_data, save_artifacts=True)
    assert predictions.num_predictions > 0
    best = predictions.top(n=1, rank_partition="val", display_partition="val", ascending=True)
    assert len(best) == 1 and np.isfinite(best[0]["val_score"])
    assert predictions.get_best(ascending=None) is not None

    assert not (workspace / "runs").exists()
    assert not list(workspace.rglob("manifest.yaml"))
    assert not list(workspace.rglob("pipeline.json"))
    # nirs4all's own check, verbatim: every artifacts/**/*.* file in a 2-character shard
    # (this store's marker, artifacts/_owner, has no dot in its name for that reason).
    files = [f for f in (workspace / "artifacts").rglob("*.*") if f.is_file()]
    assert files and all(len(f.parent.name) == 2 for f in files), files

    chains = fetch(workspace, "SELECT * FROM chains")
    assert chains
    for chain in chains:
        assert chain["model_class"] != ""
        assert chain["preprocessings"] is not None
        assert isinstance(chain["model_step_idx"], int)


def test_one_pipeline_one_completed_run(
    patched: str | None, tmp_path: Path, regression_data: Any
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    run(workspace, [MinMaxScaler(), PLSRegression(n_components=3)], regression_data)
    runs = fetch(workspace, "SELECT * FROM runs")
    assert [r["status"] for r in runs] == ["completed"]
    pipelines = fetch(workspace, "SELECT * FROM pipelines")
    assert [p["status"] for p in pipelines] == ["completed"]
    if patched is None:  # the default backend: DuckDB in the workspace folder
        assert (workspace / "store.duckdb").is_file()


def test_failing_pipeline_leaves_a_failed_or_completed_run(
    patched: str | None, tmp_path: Path
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    X = np.full((30, 10), np.nan)
    y = np.random.default_rng(0).normal(size=30)
    with contextlib.suppress(Exception):  # nirs4all's own test tolerates the failure too
        run(workspace, [MinMaxScaler(), PLSRegression(n_components=3)], (X, y))
    for row in fetch(workspace, "SELECT * FROM runs"):
        assert row["status"] in ("failed", "completed")
