"""nirs4all 0.8.x's leaderboard, project and dataset calls after a real `nirs4all.run()`, on
every backend, compared with the same run on nirs4all's own store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

nirs4all = pytest.importorskip(
    "nirs4all", reason="nirs4all is not installed (pip install 'nirs4all-store[nirs4all]')"
)

from nirs4all_store.integrations.nirs4all import use_nirs4all_store  # noqa: E402

DATASET = Path(__file__).parents[1] / "fixtures" / "nirs4all_regression_small"


def run(workspace: Path) -> Any:
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.model_selection import ShuffleSplit
    from sklearn.preprocessing import MinMaxScaler

    return nirs4all.run(
        pipeline=[
            MinMaxScaler(),
            ShuffleSplit(n_splits=3, test_size=0.25, random_state=42),
            {"_or_": [PLSRegression(n_components=3), PLSRegression(n_components=6)]},
        ],
        dataset=str(DATASET),
        name="trace_pls",
        verbose=0,
        save_artifacts=True,
        save_charts=False,
        random_state=42,
        workspace_path=str(workspace),
        project="wheat",
    )


def leaderboard(store: Any) -> list[tuple[Any, ...]]:
    """What nirs4all's web application shows: the chains by CV val score, with their scores."""
    top = store.query_top_chains("rmse", 10).to_dicts()
    return [
        (r["model_class"], r["cv_fold_count"], round(r["cv_val_score"] or -1, 9),
         round(r["final_test_score"] or -1, 9))
        for r in top
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same run on nirs4all's own store (its SQLite file)."""
    from nirs4all.pipeline.storage.workspace_store import WorkspaceStore

    ws = tmp_path_factory.mktemp("reference") / "ws"
    run(ws).close()
    store = WorkspaceStore(ws)
    try:
        return {
            "leaderboard": leaderboard(store),
            "summaries": store.query_chain_summaries().height,
            "projects": store.list_projects()["name"].to_list(),
        }
    finally:
        store.close()


def test_leaderboard_projects_and_dataset_removal_match_nirs4all(
    reference: dict[str, Any],
    database_url: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nirs4all.data.predictions import Predictions

    monkeypatch.chdir(tmp_path)
    ws = tmp_path / "ws"
    with use_nirs4all_store(database_url) as store_class:
        result = run(ws)
        best = result.best_score
        result.close()
        store = store_class(ws)
        try:
            assert leaderboard(store) == reference["leaderboard"]
            assert store.query_chain_summaries().height == reference["summaries"] == 3
            assert store.list_projects()["name"].to_list() == reference["projects"] == ["wheat"]
            project_id = store.get_or_create_project("wheat")
            runs = store.list_runs(project_id=project_id)
            assert runs.height == 1 and runs["name"][0].startswith("trace_pls")
            refit = store.query_top_chains("rmse", 1, score_column="final_test_score")
            assert refit["final_test_score"][0] == pytest.approx(best, abs=5e-5)
        finally:
            store.close()
        store = store_class(ws)
        predictions = Predictions(store=store)  # nirs4all's maintenance calls over our store
        try:
            assert predictions.clean_dead_links() == {
                "metadata_orphans_removed": 0,
                "array_orphans_found": 0,
            }
            assert predictions.compact()[DATASET.name]["rows_removed"] == 0
            removed = predictions.remove_dataset(DATASET.name)
            assert removed == {"predictions_removed": 32, "parquet_deleted": True}
            assert store.query_predictions().height == 0
            assert store.array_store.list_datasets() == []
            assert store.verify().ok
        finally:
            store.close()
