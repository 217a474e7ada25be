"""nirs4all 0.8.x itself, run on this library through `use_nirs4all_store`, on every backend.

The scenario is the one traced on nirs4all's own store (docs/nirs4all.md): MinMaxScaler,
ShuffleSplit(3), PLSRegression(3 | 6), refit, on a small real NIRS dataset in nirs4all's
folder layout (tests/fixtures/nirs4all_regression_small: 40 calibration + 20 validation
spectra). The expected figures below were produced by nirs4all 0.8.3 on its own DuckDB
store and 0.8.11 on its own SQLite store (identical): same refit selection, same scores,
same predictions.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

nirs4all = pytest.importorskip(
    "nirs4all", reason="nirs4all is not installed (pip install 'nirs4all-store[nirs4all]')"
)

from nirs4all_store import WorkspaceStore  # noqa: E402
from nirs4all_store.integrations.nirs4all import use_nirs4all_store  # noqa: E402

DATASET = Path(__file__).parents[1] / "fixtures" / "nirs4all_regression_small"
#: What nirs4all 0.8.3 (DuckDB store) and 0.8.11 (SQLite store) report for this scenario.
BEST_SCORE = 24.3506
PREDICT_BUNDLE = [
    21.354265916243484,
    42.88108181631316,
    20.11157480492496,
    34.14115665643687,
    20.496826700830344,
]
PREDICT_CHAIN = [
    21.35426544012322,
    42.88108202265361,
    20.111574662663386,
    34.14115543410456,
    20.49682621429079,
]


def probe_x() -> np.ndarray:
    with (DATASET / "Xval.csv").open() as handle:
        rows = [[float(v) for v in row] for row in csv.reader(handle, delimiter=";")]
    return np.asarray(rows[:5])


def pipeline() -> list[Any]:
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.model_selection import ShuffleSplit
    from sklearn.preprocessing import MinMaxScaler

    return [
        MinMaxScaler(),
        ShuffleSplit(n_splits=3, test_size=0.25, random_state=42),
        {"_or_": [PLSRegression(n_components=3), PLSRegression(n_components=6)]},
    ]


@pytest.fixture
def patched(database_url: str | None) -> Iterator[str | None]:
    patch = use_nirs4all_store(database_url)
    try:
        yield database_url
    finally:
        patch.restore()


def counts(store: WorkspaceStore) -> dict[str, int]:
    return {
        "runs": store.list_runs().num_rows,
        "pipelines": store.list_pipelines().num_rows,
        "predictions": store.query_predictions().num_rows,
        "artifacts": store.list_artifacts().num_rows,
    }


def test_run_export_predict_on_this_store(
    patched: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # predict(bundle) opens ./workspace
    ws = tmp_path / "ws"
    result = nirs4all.run(
        pipeline=pipeline(),
        dataset=str(DATASET),
        name="trace_pls",
        verbose=0,
        save_artifacts=True,
        save_charts=False,
        random_state=42,
        workspace_path=str(ws),
    )
    assert result.num_predictions == 32
    assert result.best_score == pytest.approx(BEST_SCORE, abs=5e-5)
    final = result.final
    chain_id = final["chain_id"]
    bundle = result.export(ws / "exports" / "best.n4a")
    by_chain = result.export(ws / "exports" / "by_chain.n4a", chain_id=chain_id)
    assert Path(by_chain).is_file()
    result.close()

    with WorkspaceStore(ws, url=patched) as store:
        assert counts(store) == {"runs": 1, "pipelines": 3, "predictions": 32, "artifacts": 10}
        pipelines = store.list_pipelines().to_pylist()
        assert {p["status"] for p in pipelines} == {"completed"}
        chains = [
            c
            for p in pipelines
            for c in store.get_chains_for_pipeline(p["pipeline_id"]).to_pylist()
        ]
        assert len(chains) == 3
        refit = store.get_chain(chain_id)
        assert refit is not None and set(refit["fold_artifacts"]) == {"fold_final"}
        # Summaries nirs4all asked for (bulk_update_chain_summaries), computed in SQL.
        assert refit["final_test_score"] == pytest.approx(final["test_score"], rel=1e-12)
        cv_counts = sorted(c["cv_fold_count"] for c in chains if c["chain_id"] != chain_id)
        assert cv_counts == [5, 5]  # folds 0, 1, 2 + avg, w_avg (as nirs4all 0.8.3 counts)
        rows = store.query_predictions().to_pylist()
        for row in rows:
            stored = store.get_prediction(row["prediction_id"], load_arrays=True)
            assert stored is not None and stored["y_pred"] is not None, row
            assert row["chain_id"] in {c["chain_id"] for c in chains}
        # Scores equal to what nirs4all reports (refit test score = RunResult.best_score).
        refit_test = [r for r in rows if r["fold_id"] == "final" and r["partition"] == "test"]
        assert len(refit_test) == 1
        assert refit_test[0]["test_score"] == pytest.approx(final["test_score"], rel=1e-12)
        assert refit_test[0]["refit_context"] == "standalone"
        report = store.verify()
        assert report.ok, report.problems()
        # Live chain references: each artifact row is referenced by the chains naming it.
        refs = {a["artifact_id"]: a["ref_count"] for a in store.list_artifacts().to_pylist()}
        assert all(n >= 1 for n in refs.values()), refs

    X = probe_x()
    from_bundle = nirs4all.predict(
        model=str(bundle), data=X, verbose=0, workspace_path=str(tmp_path / "other")
    )
    np.testing.assert_allclose(np.asarray(from_bundle.y_pred).ravel(), PREDICT_BUNDLE, rtol=1e-9)
    from_chain = nirs4all.predict(chain_id=chain_id, data=X, workspace_path=str(ws), verbose=0)
    np.testing.assert_allclose(np.asarray(from_chain.y_pred).ravel(), PREDICT_CHAIN, rtol=1e-9)


def test_reopened_predictions_and_raw_sql(
    patched: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Predictions(workspace)` rebuilds its buffer from the store (rows + arrays), and
    nirs4all's raw SQL (`store_stats`, the 0.8.11 refit query, 0.8.3's `$1` form) runs on
    every backend."""
    from nirs4all.data.predictions import Predictions
    from nirs4all.pipeline.storage.workspace_store import WorkspaceStore as Patched

    monkeypatch.chdir(tmp_path)
    ws = tmp_path / "ws"
    result = nirs4all.run(
        pipeline=pipeline(),
        dataset=str(DATASET),
        name="trace_pls",
        verbose=0,
        save_artifacts=True,
        save_charts=False,
        random_state=42,
        workspace_path=str(ws),
    )
    result.close()
    reopened = Predictions(str(ws), load_arrays=True)
    assert reopened.num_predictions == 32
    top = reopened.top(n=1, rank_partition="val")
    assert len(top) == 1 and top[0]["y_pred"] is not None
    reopened.close()

    store = Patched(ws)
    try:
        runs = store._fetch_pl("SELECT run_id, name, status FROM runs")
        assert runs.to_dicts()[0]["status"] == "completed"
        run_id = runs.to_dicts()[0]["run_id"]
        ordered = store._fetch_pl(
            "SELECT rowid AS _rowid, * FROM pipelines WHERE run_id = ? AND dataset_name = ? "
            "ORDER BY rowid ASC",
            [run_id, DATASET.name],
        )
        names = ordered["name"].to_list()
        assert len(names) == 3 and names[-1].endswith("_refit"), names
        dollar = store._fetch_pl(
            "SELECT COUNT(*) AS cnt FROM predictions WHERE fold_id = $1 AND partition = $2",
            ["final", "test"],
        )
        assert dollar["cnt"].to_list() == [1]
        assert store._fetch_pl("SELECT COUNT(*) AS cnt FROM chains")["cnt"].to_list() == [3]
    finally:
        store.close()
