"""The CLI `predict` checks the wavelength axis of the CSV's header against the bundle's and
echoes an id column beside the predictions; `run` spec files carry parameter grids (one class
table and one builder with the library's templates); `demo --n-jobs`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from nirs4all_store import WorkspaceStore
from nirs4all_store.cli import specs
from nirs4all_store.cli.main import main
from nirs4all_store.workbench.bundle import load_bundle
from nirs4all_store.workbench.library import STEP_CLASSES
from nirs4all_store.workbench.training.datasets import synthetic_nirs, write_nirs4all_folder


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset folder with a header of wavelengths, bundle of the best chain)."""
    folder = tmp_path_factory.mktemp("trained")
    data = write_nirs4all_folder(synthetic_nirs(40, 25, seed=3, test_fraction=0.25), folder / "d")
    ws, bundle = folder / "ws", folder / "best.n4a"
    assert main(["run", "-d", str(data), "-p", "ridge", "--cv", "3", "-w", str(ws), "-q"]) == 0
    assert main(["export-chain", "--run", _last_run(ws), "-o", str(bundle), "-w", str(ws)]) == 0
    return data, bundle


def _last_run(ws: Path) -> str:
    with WorkspaceStore(ws, read_only=True) as store:
        return str(store.list_runs(limit=1).to_pylist()[0]["run_id"])


def _spectra(n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    data = synthetic_nirs(40, 25, seed=3, test_fraction=0.25)
    assert data.X_test is not None and data.wavelengths is not None
    return data.X_test[:n], data.wavelengths


def _csv(path: Path, X: np.ndarray, header: list[str] | None, ids: list[str] | None) -> Path:
    rows = [";".join(header)] if header is not None else []
    for i, row in enumerate(X.tolist()):
        cell = [f'"{ids[i]}"' if ";" in ids[i] else ids[i]] if ids else []
        rows.append(";".join(cell + [repr(v) for v in row]))
    path.write_text("\n".join(rows) + "\n")
    return path


def test_predict_echoes_the_id_column_next_to_the_predictions(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, bundle = trained
    X, wl = _spectra()
    expected = load_bundle(bundle).predict(X)
    ids = ["S01", "S02", "S;03", "S04"]  # a ';' in an id is quoted, not a new column
    header = ["sample", *(repr(w) for w in wl.tolist())]
    src = _csv(tmp_path / "new.csv", X, header, ids)
    out_csv = tmp_path / "y.csv"
    code, out, err = cli(capsys, "predict", str(bundle), str(src), "-o", str(out_csv))
    assert code == 0, err
    lines = out_csv.read_text().splitlines()
    assert lines[0] == "sample;y_pred" and lines[3].startswith('"S;03";')
    assert [line.split(";")[0] for line in (lines[1], lines[2], lines[4])] == ["S01", "S02", "S04"]
    np.testing.assert_allclose([float(line.rsplit(";", 1)[1]) for line in lines[1:]], expected)

    code, out, _ = cli(capsys, "predict", str(bundle), str(src), "--json")
    data = json.loads(out)
    assert data["ids"] == ids and data["id_column"] == "sample"
    np.testing.assert_allclose(data["predictions"], expected)

    plain = _csv(tmp_path / "plain.csv", X, None, ["a", "b", "c", "d"])  # no header: "id"
    code, out, _ = cli(capsys, "predict", str(bundle), str(plain))
    assert code == 0 and [r.split(";")[0] for r in out.split()] == ["a", "b", "c", "d"]
    code, _, _ = cli(capsys, "predict", str(bundle), str(plain), "-o", str(out_csv))
    assert out_csv.read_text().splitlines()[0] == "id;y_pred"


def test_predict_with_a_named_id_column_and_without_ids(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, bundle = trained
    X, wl = _spectra()
    expected = load_bundle(bundle).predict(X)
    numbered = np.hstack([np.arange(101, 105)[:, None], X])  # numeric ids: only by name
    src = _csv(tmp_path / "n.csv", numbered, ["batch", *map(repr, wl.tolist())], None)
    code, out, err = cli(capsys, "predict", str(bundle), str(src), "--id-column", "batch")
    assert code == 0, err
    rows = [r.split(";") for r in out.split()]
    assert [r[0] for r in rows] == ["101.0", "102.0", "103.0", "104.0"]
    np.testing.assert_allclose([float(r[1]) for r in rows], expected)
    code, _, err = cli(capsys, "predict", str(bundle), str(src), "--id-column", "nope")
    assert code == 1 and "no column named 'nope'" in err

    bare = _csv(tmp_path / "bare.csv", X, None, None)
    code, out, _ = cli(capsys, "predict", str(bundle), str(bare), "-o", str(tmp_path / "y.csv"))
    assert code == 0 and (tmp_path / "y.csv").read_text().splitlines()[0] == "y_pred"


def test_predict_refuses_spectra_on_another_axis(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, bundle = trained
    X, wl = _spectra()
    same = _csv(tmp_path / "same.csv", X, [repr(w) for w in wl.tolist()], None)
    assert cli(capsys, "predict", str(bundle), str(same))[0] == 0

    moved = _csv(tmp_path / "moved.csv", X, [repr(w + 5) for w in wl.tolist()], None)
    code, _, err = cli(capsys, "predict", str(bundle), str(moved))
    assert code == 1 and "moved.csv" in err and "another wavelength axis" in err
    assert "given 25 wavelengths 1005..2505" in err and "fitted on 25 wavelengths 1000..2500" in err
    assert "Traceback" not in err

    short = _csv(tmp_path / "short.csv", X[:, :20], [repr(w) for w in wl[:20].tolist()], None)
    code, _, err = cli(capsys, "predict", str(bundle), str(short))
    assert code == 1 and "X has 20 features but chain" in err and "expects 25" in err


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_run_spec_files_expand_a_grid_per_step(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    data, _ = trained
    spec = {
        "pipelines": [
            [
                {"class": "SavitzkyGolay", "grid": {"window_length": [7, 11], "deriv": [1]}},
                {"class": "PLSRegression", "grid": {"n_components": [2, 4]}},
            ],
            ["SNV", "Lasso"],  # a class of the old CLI-only table: one table now
        ]
    }
    path = tmp_path / f"spec{suffix}"
    path.write_text(json.dumps(spec) if suffix == ".json" else yaml.safe_dump(spec))
    ws = tmp_path / "ws"
    code, out, err = cli(capsys, "run", "-d", str(data), "-p", str(path), "--cv", "3",
                         "-w", str(ws), "--json")  # fmt: skip
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    with WorkspaceStore(ws, read_only=True) as store:
        rows = store.list_pipelines(run_id=run_id).to_pylist()
    assert len(rows) == 2 * 2 + 1 and all(r["status"] == "completed" for r in rows)
    stored = [r["generator_choices"] for r in rows if r["generator_choices"]]
    choices = [json.loads(c) if isinstance(c, str) else c for c in stored]  # JSON text
    assert len(choices) == 4
    picked = {(c[0]["params"]["window_length"], c[1]["params"]["n_components"]) for c in choices}
    assert picked == {(7, 2), (7, 4), (11, 2), (11, 4)}
    assert choices[0][0]["step_idx"] == 0 and choices[0][0]["operator_class"] == "SavitzkyGolay"
    assert choices[0][0]["params"]["deriv"] == 1
    assert choices[0][1]["step_idx"] == 1 and choices[0][1]["operator_class"] == "PLSRegression"


def test_bad_grids_in_spec_files_are_one_line_errors(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = trained
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([["SNV", {"class": "Ridge", "grid": {"alphaa": [1, 2]}}]]))
    code, _, err = cli(capsys, "run", "-d", str(data), "-p", str(path), "-w", str(tmp_path / "w"))
    assert code == 1 and "unknown parameter(s) ['alphaa']" in err and "Traceback" not in err


def test_one_table_of_step_classes() -> None:
    assert not hasattr(specs, "KNOWN_CLASSES")
    for name in ("Normalizer", "Lasso", "ElasticNet", "KNeighborsClassifier", "SNV", "MSC"):
        assert name in STEP_CLASSES
        (steps,) = specs.build_pipelines([name])
        assert type(steps[0]).__name__ == name


def test_demo_takes_n_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["demo", "--samples", "60", "--wavelengths", "40", "--cv", "3", "--json"]
    code, out, err = cli(capsys, *argv, "--n-jobs", "2", "-w", "two")
    assert code == 0, err
    two = json.loads(out)
    code, out, _ = cli(capsys, *argv, "--n-jobs", "1", "-w", "one")
    one = json.loads(out)
    key = ("preprocessings", "model_name", "val_score", "test_score")
    assert [[r[k] for k in key] for r in two["leaderboard"]] == [
        [r[k] for k in key] for r in one["leaderboard"]
    ]
    code, _, err = cli(capsys, "demo", "--n-jobs", "0", "-w", "zero")
    assert code == 1 and "n_jobs must be None, a positive int or -1" in err
    assert not (tmp_path / "zero").exists()  # refused before the workspace is created
