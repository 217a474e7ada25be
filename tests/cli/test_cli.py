"""The `nirs4all-store` command line: commands, --json output, exit codes and error lines.

Most tests call `main(argv)` in-process (capsys); a few run the real `python -m nirs4all_store`
in a subprocess to check exit codes and that no traceback leaks out.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from nirs4all_store import WorkspaceStore
from nirs4all_store.cli.main import main
from nirs4all_store.workbench.training.datasets import synthetic_nirs, write_nirs4all_folder

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "nirs4all_v4_workspace.tar.gz"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def demo_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small demo workspace shared by the read-only command tests."""
    folder = tmp_path_factory.mktemp("demo")
    ws = folder / "workspace"
    code = main(
        [
            "demo",
            "--samples",
            "80",
            "--wavelengths",
            "60",
            "--cv",
            "3",
            "--workspace",
            str(ws),
            "--json",
        ]
    )
    assert code == 0
    return ws


def test_demo_prints_leaderboard_exports_and_predicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "demo", "--samples", "80", "--wavelengths", "60", "--cv", "3")
    assert code == 0, err
    assert "rank" in out and "val rmse" in out and "PLSRegression(n_components=5)" in out
    assert "SNV" in out and "Ridge()" in out
    bundle = tmp_path / "workspace" / "exports" / "best.n4a"
    assert bundle.is_file() and f"to {bundle}" in out
    assert "predicts the 20 held-out test spectra" in out and "RMSE" in out
    assert "verify: ok" in out
    assert "36/36" in err  # 9 pipelines x (3 folds + refit)


def test_demo_json_and_read_commands(
    demo_ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = ["--workspace", str(demo_ws)]
    code, out, _ = cli(capsys, "runs", "--json", *ws)
    runs = json.loads(out)
    assert code == 0 and len(runs) == 1 and runs[0]["name"] == "demo" and runs[0]["pipelines"] == 9
    run_id = runs[0]["run_id"]

    code, out, _ = cli(capsys, "runs", *ws)
    assert code == 0 and run_id[:8] in out and "completed" in out

    code, out, _ = cli(capsys, "show", run_id[:8], *ws)  # a unique prefix is enough
    assert code == 0 and run_id in out and out.count("completed") >= 9

    code, out, _ = cli(capsys, "top", "-n", "3", "--json", *ws)
    rows = json.loads(out)["rows"]
    assert [r["fold_id"] for r in rows] == ["avg"] * 3
    scores = [r["val_score"] for r in rows]
    assert scores == sorted(scores)  # rmse: lower is better

    code, out, _ = cli(capsys, "top", "--run", run_id, "--partition", "test", "-n", "2", *ws)
    assert code == 0 and "test rmse" in out and len(out.strip().splitlines()) == 5

    bundle = tmp_path / "b.n4a"
    code, out, _ = cli(capsys, "export-chain", "--run", run_id, "-o", str(bundle), *ws)
    assert code == 0 and bundle.is_file() and rows[0]["chain_id"] in out

    data = synthetic_nirs(80, 60, seed=0, test_fraction=0.25)
    csv = tmp_path / "x.csv"
    np.savetxt(csv, data.X_test[:4], delimiter=";")
    code, out, _ = cli(capsys, "predict", str(bundle), str(csv))
    values = [float(v) for v in out.split()]
    assert code == 0 and len(values) == 4
    code, out, _ = cli(capsys, "predict", str(bundle), str(csv), "--json")
    assert np.allclose(json.loads(out)["predictions"], values)

    parquet = tmp_path / "p.parquet"
    code, _, _ = cli(
        capsys,
        "export-predictions",
        "--run",
        run_id[:8],
        "--partition",
        "val",
        "-o",
        str(parquet),
        *ws,
    )
    table = pq.read_table(parquet)
    assert (
        code == 0
        and table.num_rows == 9 * 4
        and set(table.column("partition").to_pylist()) == {"val"}
    )

    code, out, _ = cli(capsys, "gc", "--dry-run", *ws)
    assert code == 0 and "would remove 0" in out
    code, out, _ = cli(capsys, "verify", *ws)
    assert code == 0 and out.strip() == "ok"
    code, out, _ = cli(capsys, "db", "current", *ws)
    assert code == 0 and "up to date" in out
    code, out, _ = cli(capsys, "db", "history", "--json", *ws)
    assert code == 0 and {"0001", "0002"} <= {r["revision"] for r in json.loads(out)}


def test_report_embeds_png_images(
    demo_ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    code, out, _ = cli(capsys, "runs", "--json", "--workspace", str(demo_ws))
    run_id = json.loads(out)[0]["run_id"]
    target = tmp_path / "report.html"
    code, out, err = cli(capsys, "report", run_id, "-o", str(target), "--workspace", str(demo_ws))
    assert code == 0, err
    page = target.read_text(encoding="utf-8")
    assert "<table>" in page and "Leaderboard" in page
    images = page.split('src="data:image/png;base64,')[1:]
    assert len(images) == 3
    png = base64.b64decode(images[0].split('"', 1)[0])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000


def test_report_without_matplotlib_says_how_to_install(
    demo_ws: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    code, _, err = cli(
        capsys, "report", "abc", "-o", str(tmp_path / "r.html"), "--workspace", str(demo_ws)
    )
    assert code == 1 and "pip install nirs4all-store[plot]" in err
    assert not (tmp_path / "r.html").exists()


def test_run_command_on_folder_with_json_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = synthetic_nirs(50, 30, seed=2, test_fraction=0.2)
    folder = write_nirs4all_folder(data, tmp_path / "corn", compress=True)
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "pipelines": [
                    ["SNV", {"class": "PLSRegression", "params": {"n_components": 3}}],
                    [{"class": "sklearn.preprocessing.StandardScaler"}, "Ridge"],
                ]
            }
        )
    )
    ws = tmp_path / "ws"
    code, out, err = cli(
        capsys,
        "run",
        "-d",
        str(folder),
        "-p",
        str(spec),
        "--cv",
        "3",
        "--name",
        "spec",
        "-w",
        str(ws),
    )
    assert code == 0, err
    assert "PLSRegression(n_components=3)" in out and "Ridge()" in out and "corn" in out
    code, out, _ = cli(
        capsys, "run", "-d", str(folder), "-p", "ridge", "--cv", "3", "-q", "-w", str(ws)
    )
    run_id = out.strip()
    assert code == 0 and len(run_id) == 36
    code, out, _ = cli(capsys, "delete-run", run_id[:8], "-w", str(ws))
    assert code == 0 and f"deleted run {run_id}" in out
    code, out, _ = cli(capsys, "runs", "--json", "-w", str(ws))
    assert [r["name"] for r in json.loads(out)] == ["spec"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "nope"], "unknown run 'nope'"),
        (["delete-run", "nope"], "unknown run 'nope'"),
        (["export-chain"], "give a CHAIN_ID, --run RUN_ID"),
        (["export-chain", "00000000-0000-0000-0000-000000000000"], "unknown chain"),
        (["predict", "missing.n4a", "x.csv"], "x.csv: no such file"),
        (["run", "-d", "nofolder"], "nofolder: not a folder"),
        (["run", "-d", "DATA", "-p", "nosuch"], "--pipeline 'nosuch': not a template"),
        (["run", "-d", "DATA", "-p", "SPEC"], "unknown step class 'Frobnicator'"),
        (["run", "-d", "DATA", "--cv", "1"], "cv must be an int >= 2"),
    ],
)
def test_errors_are_one_line_and_exit_1(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    WorkspaceStore(tmp_path / "ws").close()  # an existing, empty workspace
    write_nirs4all_folder(synthetic_nirs(20, 15), tmp_path / "DATA")
    (tmp_path / "SPEC").write_text('[["MinMaxScaler", "Frobnicator"]]')
    where = [] if argv[0] == "predict" else ["--workspace", str(tmp_path / "ws")]
    code, _, err = cli(capsys, *argv, *where)
    assert code == 1
    assert message in err and err.startswith("nirs4all-store: error:")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_dataset_file_error_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_nirs4all_folder(synthetic_nirs(20, 15), tmp_path / "bad", header=False)
    lines = (folder / "Xcal.csv").read_text().splitlines()
    lines[3] = lines[3].replace(";", ";oops", 1)
    (folder / "Xcal.csv").write_text("\n".join(lines) + "\n")
    code, _, err = cli(capsys, "run", "-d", str(folder), "-w", str(tmp_path / "ws"))
    assert code == 1 and "Xcal.csv" in err and "line 4" in err


def test_debug_shows_the_exception(tmp_path: Path) -> None:
    WorkspaceStore(tmp_path / "ws").close()
    with pytest.raises(Exception, match="unknown run"):
        main(["show", "nope", "--debug", "--workspace", str(tmp_path / "ws")])


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_db_upgrade_downgrade_on_sqlite_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    code, out, _ = cli(capsys, "db", "upgrade", "--url", url)
    assert code == 0 and "(none) ->" in out
    code, out, _ = cli(capsys, "db", "current", "--url", url, "--json")
    state = json.loads(out)
    assert state["current"] == state["head"]
    code, out, _ = cli(capsys, "db", "downgrade", "0001", "--url", url)
    assert code == 0 and out.strip().endswith("-> 0001")
    code, out, _ = cli(capsys, "db", "current", "--url", url)
    assert "upgrade available" in out
    code, out, err = cli(capsys, "db", "current", "--workspace", str(tmp_path / "none"))
    assert code == 1 and "no database at" in err


def test_db_adopt_dry_run_on_legacy_fixture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    ws = next(p for p in tmp_path.iterdir() if p.is_dir())
    code, out, err = cli(capsys, "db", "adopt", "--dry-run", "--workspace", str(ws))
    assert code == 0, err
    assert "would adopt" in out
    code, out, err = cli(capsys, "db", "upgrade", "--workspace", str(ws))
    assert code == 1 and "db adopt" in err


def _subprocess(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NIRS4ALL_STORE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "nirs4all_store", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_python_dash_m_help_and_error_exit_codes(tmp_path: Path) -> None:
    done = _subprocess("--help", cwd=tmp_path)
    assert done.returncode == 0
    for command in (
        "demo",
        "run",
        "runs",
        "show",
        "top",
        "export-chain",
        "export-predictions",
        "predict",
        "gc",
        "verify",
        "vacuum",
        "delete-run",
        "report",
        "ui",
        "db",
    ):
        assert command in done.stdout
    WorkspaceStore(tmp_path / "workspace").close()
    done = _subprocess("show", "nope", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "nirs4all-store: error: unknown run 'nope': no run id starts with it "
        "(see `nirs4all-store runs`)"
    )
    done = _subprocess("frobnicate", cwd=tmp_path)
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_vacuum(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    WorkspaceStore(ws).close()
    code, out, _ = cli(capsys, "vacuum", "--json", "--workspace", str(ws))
    info: dict[str, Any] = json.loads(out)
    assert code == 0 and "before_bytes" in info


def test_report_of_classification_run_shows_confusion_matrix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from nirs4all_store.workbench.training.session import run

    data = synthetic_nirs(60, 30, task="classification", seed=3)
    with run(
        [StandardScaler(), LogisticRegression(max_iter=2000)],
        data,
        tmp_path / "ws",
        cv=3,
        verbose=0,
    ) as result:
        run_id = result.run_id
    code, _, err = cli(
        capsys, "report", run_id, "-o", str(tmp_path / "c.html"), "-w", str(tmp_path / "ws")
    )
    page = (tmp_path / "c.html").read_text(encoding="utf-8")
    assert code == 0, err
    assert page.count("data:image/png;base64,") == 1 and "accuracy" in page and "RMSE" not in page
