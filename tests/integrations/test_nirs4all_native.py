"""Real user data of nirs4all 0.8.x: its own `.n4a` bundles and its own workspaces.

The data are made at test time by nirs4all itself on its own store (no adapter): the
scenario of test_nirs4all_run.py (MinMaxScaler, ShuffleSplit(3), PLSRegression(3 | 6),
refit) on tests/fixtures/nirs4all_regression_small, ~7 s with nirs4all 0.8.11, which writes
``store.sqlite`` + ``arrays/<dataset>.parquet`` + ``artifacts/``. Then:
- `result.export(path)` and the store's `export_chain` bundles are read by this library's
  `load_bundle` / `predict`, predicting what nirs4all predicts (1e-9);
- `WorkspaceStore(folder)` adopts the workspace: every row, array and artifact, `verify()`
  clean, replay equal to nirs4all's, the original files untouched; the adapter finds
  adopted predictions by their 16-character nirs4all ids.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import sqlite3
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

nirs4all = pytest.importorskip(
    "nirs4all", reason="nirs4all is not installed (pip install 'nirs4all-store[nirs4all]')"
)

from nirs4all_store import BundleError, WorkspaceStore  # noqa: E402
from nirs4all_store import predict as store_predict  # noqa: E402
from nirs4all_store.integrations.nirs4all import use_nirs4all_store  # noqa: E402
from nirs4all_store.validation import stored_prediction_id  # noqa: E402
from nirs4all_store.workbench.axis import SpectralAxisError  # noqa: E402
from nirs4all_store.workbench.bundle import load_bundle  # noqa: E402

DATASET = Path(__file__).parents[1] / "fixtures" / "nirs4all_regression_small"
TABLES = ("runs", "pipelines", "chains", "predictions", "artifacts")
ARRAYS = ("y_true", "y_pred", "sample_indices", "weights")


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


def sqlite_rows(ws: Path, table: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(f"{(ws / 'store.sqlite').as_uri()}?mode=ro&immutable=1", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(f"SELECT * FROM {table}")]
    finally:
        con.close()


def digests(ws: Path) -> dict[str, str]:
    """SHA-256 of every file nirs4all wrote (what adoption must leave as it was)."""
    return {
        str(p.relative_to(ws)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(ws.rglob("*"))
        if p.is_file() and p.name != "_owner"
    }


class Native:
    """What nirs4all 0.8 wrote and predicted on its own store."""

    def __init__(self, root: Path) -> None:
        from nirs4all.pipeline.storage import WorkspaceStore as NirsStore

        self.ws = root / "ws"
        result = nirs4all.run(
            pipeline=pipeline(),
            dataset=str(DATASET),
            name="native",
            verbose=0,
            save_artifacts=True,
            save_charts=False,
            random_state=42,
            workspace_path=str(self.ws),
        )
        self.chain_id = str(result.final["chain_id"])
        self.bundle = Path(result.export(root / "exports" / "best.n4a"))
        result.close()
        store = NirsStore(self.ws)
        try:
            self.chain_bundle = Path(
                store.export_chain(self.chain_id, root / "exports" / "by_chain.n4a")
            )
        finally:
            store.close()
        self.X = probe_x()
        self.bundle_pred = np.asarray(nirs4all.predict(str(self.bundle), self.X).y_pred)
        self.chain_pred = np.asarray(
            nirs4all.predict(
                chain_id=self.chain_id, data=self.X, workspace_path=str(self.ws)
            ).y_pred
        )
        self.rows = {t: sqlite_rows(self.ws, t) for t in TABLES}
        import polars as pl

        self.arrays = {
            r["prediction_id"]: r
            for path in sorted((self.ws / "arrays").glob("*.parquet"))
            for r in pl.read_parquet(path).to_dicts()
        }


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Native]:
    root = tmp_path_factory.mktemp("native")
    cwd = os.getcwd()
    os.chdir(root)  # nirs4all.predict(bundle) opens ./workspace
    try:
        yield Native(root)
    finally:
        os.chdir(cwd)


@pytest.fixture
def workspace(native: Native, tmp_path: Path) -> Path:
    """A copy of nirs4all's workspace (the original stays pristine for the other tests)."""
    return Path(shutil.copytree(native.ws, tmp_path / "ws"))


# -- bundles --------------------------------------------------------------------------------


def test_fixture_is_what_nirs4all_0_8_writes(native: Native) -> None:
    assert (native.ws / "store.sqlite").is_file() and not (native.ws / "store.duckdb").exists()
    assert list((native.ws / "arrays").glob("*.parquet"))
    assert all(len(p["prediction_id"]) == 16 for p in native.rows["predictions"])
    assert all(a["content_hash"].startswith("sha256:") for a in native.rows["artifacts"])
    with zipfile.ZipFile(native.bundle) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert "format_version" not in manifest and "bundle_format_version" in manifest


def test_result_export_bundle_predicts_what_nirs4all_predicts(native: Native) -> None:
    bundle = load_bundle(native.bundle)
    np.testing.assert_allclose(bundle.predict(native.X), native.bundle_pred, rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        store_predict(native.bundle, native.X), native.bundle_pred, rtol=0, atol=1e-9
    )
    with pytest.raises(SpectralAxisError, match="expects 108"):
        bundle.predict(native.X[:, :50])


def test_chain_export_bundle_predicts_what_nirs4all_replays(native: Native) -> None:
    # nirs4all 0.8.11 itself cannot predict from this layout ("No model step found in
    # bundle"); the reference is its replay of the same chain in the workspace.
    bundle = load_bundle(native.chain_bundle)
    assert bundle.chain_id == native.chain_id
    np.testing.assert_allclose(bundle.predict(native.X), native.chain_pred, rtol=0, atol=1e-9)
    with pytest.raises(SpectralAxisError, match="expects 108"):
        bundle.predict(native.X[:, :50])


def _rewrite(source: Path, target: Path, extra: dict[str, bytes], flip: str | None) -> Path:
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == flip:
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.writestr(name, data)
        for name, data in extra.items():
            dst.writestr(name, data)
    return target


def test_hostile_nirs4all_bundles_are_refused(native: Native, tmp_path: Path) -> None:
    for source in (native.bundle, native.chain_bundle):
        evil = _rewrite(source, tmp_path / "evil.n4a", {"../../evil.joblib": b"x"}, None)
        with pytest.raises(BundleError, match="unsafe member name"):
            load_bundle(evil)
        with pytest.raises(BundleError, match="over the 10-byte limit"):
            load_bundle(source, max_bytes=10)
    with zipfile.ZipFile(native.chain_bundle) as zf:
        model = next(n for n in zf.namelist() if "PLSRegression" in n)
    tampered = _rewrite(native.chain_bundle, tmp_path / "tampered.n4a", {}, model)
    with pytest.raises(BundleError, match="SHA-256"):
        load_bundle(tampered)


# -- workspaces -------------------------------------------------------------------------------


def test_workspace_store_adopts_a_nirs4all_0_8_workspace(native: Native, workspace: Path) -> None:
    before = digests(workspace)
    with WorkspaceStore(workspace) as store:
        assert {r["run_id"] for r in store.list_runs().to_pylist()} == {
            r["run_id"] for r in native.rows["runs"]
        }
        assert {p["pipeline_id"] for p in store.list_pipelines().to_pylist()} == {
            p["pipeline_id"] for p in native.rows["pipelines"]
        }
        for chain in native.rows["chains"]:
            got = store.get_chain(chain["chain_id"])
            assert got is not None and got["fold_artifacts"] == json.loads(chain["fold_artifacts"])
        assert store.query_predictions().num_rows == len(native.rows["predictions"])
        for row in native.rows["predictions"]:
            got = store.get_prediction(stored_prediction_id(row["prediction_id"]), load_arrays=True)
            assert got is not None and got["val_score"] == row["val_score"]
            assert got["fold_id"] == row["fold_id"] and got["partition"] == row["partition"]
            parquet = native.arrays[row["prediction_id"]]
            for name in ARRAYS:
                np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(parquet[name]))
        assert store.list_artifacts().num_rows == len(native.rows["artifacts"])
        for art in native.rows["artifacts"]:
            got = store.get_artifact(art["artifact_id"])
            assert got is not None and "sha256:" + got["content_hash"] == art["content_hash"]
            assert hasattr(store.load_artifact(art["artifact_id"]), "transform") or hasattr(
                store.load_artifact(art["artifact_id"]), "predict"
            )
        report = store.verify()
        assert not (report.missing_files or report.orphan_files or report.corrupted_files)
        assert not (report.ref_count_mismatches or report.unknown_artifact_refs)
        replayed = store.replay_chain(native.chain_id, native.X)
    np.testing.assert_allclose(replayed, native.chain_pred, rtol=0, atol=1e-9)
    after = digests(workspace)  # every file nirs4all wrote is still there, unchanged
    assert {k: after.get(k) for k in before} == before
    with WorkspaceStore(workspace) as store:  # reopening: no second adoption
        assert store.query_predictions().num_rows == len(native.rows["predictions"])


def test_dry_run_and_report_of_a_nirs4all_0_8_workspace(native: Native, workspace: Path) -> None:
    from nirs4all_store.legacy.adopt import adopt_legacy_workspace

    before = digests(workspace)
    report = adopt_legacy_workspace(workspace, dry_run=True)
    assert report.status == "would_adopt"
    assert report.rows()["prediction_arrays"] == len(native.arrays)
    assert "store.sqlite" in report.describe()
    assert digests(workspace) == before and not (workspace / "store.duckdb").exists()
    report = adopt_legacy_workspace(workspace)
    assert report.status == "adopted" and report.backup == workspace / "store.sqlite"
    after = digests(workspace)
    assert {k: after.get(k) for k in before} == before


def test_nirs4all_finds_adopted_predictions_by_its_own_ids(
    native: Native, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace.parent)
    patch = use_nirs4all_store(None)
    try:
        from nirs4all.pipeline.storage import WorkspaceStore as Patched

        store = Patched(workspace)  # the adapter: adopts on open
        try:
            for row in native.rows["predictions"]:
                got = store.get_prediction(row["prediction_id"])
                assert got is not None and got["model_name"] == row["model_name"]
                arrays = store.array_store.load_single(row["prediction_id"])
                assert arrays is not None
                np.testing.assert_array_equal(
                    np.asarray(arrays["y_pred"]),
                    np.asarray(native.arrays[row["prediction_id"]]["y_pred"]),
                )
        finally:
            store.close()
        result = nirs4all.predict(
            chain_id=native.chain_id, data=native.X, workspace_path=str(workspace)
        )
        np.testing.assert_allclose(np.asarray(result.y_pred), native.chain_pred, rtol=0, atol=1e-9)
    finally:
        patch.restore()
