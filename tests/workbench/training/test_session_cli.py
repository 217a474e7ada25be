"""`nirs4all-store run` with a group splitter, parallel fits, a chemometric ranking metric and
a template of the workspace's pipeline library."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nirs4all_store import PipelineLibrary, WorkspaceStore
from nirs4all_store.cli.main import main
from nirs4all_store.workbench.training.datasets import (
    Dataset,
    synthetic_nirs,
    write_nirs4all_folder,
)


def test_run_group_cv_n_jobs_metric_rpd_and_a_library_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = synthetic_nirs(20, 30, seed=5)
    X = np.repeat(base.X_train, 2, axis=0) + np.random.default_rng(0).normal(0, 1e-3, (40, 30))
    ds = Dataset("replicates", X, np.repeat(base.y_train, 2), wavelengths=base.wavelengths)
    folder = write_nirs4all_folder(ds, tmp_path / "replicates")
    (folder / "Mcal.csv").write_text("sample\n" + "".join(f"{i // 2}\n" for i in range(40)))
    ws = tmp_path / "ws"
    with PipelineLibrary(ws) as lib:
        lib.save_template(
            [["SNV", {"class": "PLSRegression", "grid": {"n_components": [2, 4]}}]], "pls-snv"
        )
    argv = ["run", "-d", str(folder), "-p", "pls-snv", "--cv", "group:5", "--groups", "sample"]
    code = main([*argv, "--n-jobs", "2", "--metric", "rpd", "-w", str(ws), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    data = json.loads(out)
    board = data["leaderboard"]
    assert len(board) == 2 and board[0]["metric"] == "rpd"
    assert board[0]["val_score"] >= board[1]["val_score"]  # rpd: higher is better
    with WorkspaceStore(ws) as store:
        config = store.get_run(data["run_id"])["config"]  # type: ignore[index]
        assert "GroupKFold" in config["splitting"]["splitter"]
        assert config["splitting"]["groups"] == "metadata column 'sample'"
        for row in store.query_predictions(run_id=data["run_id"], partition="val").to_pylist():
            if row["fold_id"].startswith("fold_"):
                full = store.get_prediction(row["prediction_id"], load_arrays=True)
                va = set((np.asarray(full["sample_indices"]) // 2).tolist())  # type: ignore[index]
                tr = set(range(20)) - va
                assert va and not va & tr
    assert main(["run", "-d", str(folder), "--cv", "group:x", "-w", str(ws)]) != 0
    assert "must be an integer" in capsys.readouterr().err
